// The circuit breaker of one target (cockatiel's CircuitBreakerPolicy with a WindowBreaker): it opens
// when too many calls in a window fail for infrastructure reasons, then refuses calls at once with
// UNAVAILABLE, lets one trial call through after a delay (half-open), and closes when it succeeds.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  CircuitState,
  circuitBreaker,
  handleWhen,
  isBrokenCircuitError,
  type CircuitBreakerPolicy,
  type IDisposable,
} from "cockatiel";
import { ConnectErrorKind, retryDetails } from "../grpc/errors.js";
import { callHook, type CircuitStateName, type ResilienceHooks } from "./hooks.js";
import { WindowBreaker } from "./window-breaker.js";

export type { CircuitStateName } from "./hooks.js";

/** UNAVAILABLE for a call refused without being sent, because the target's circuit is open. */
export class CircuitOpenError extends ConnectErrorKind {
  readonly target: string;
  /** When the circuit lets a trial call through, in ms from the refusal; undefined while one runs. */
  readonly retryAfterMs: number | undefined;

  constructor(target: string, retryAfterMs: number | undefined) {
    const message =
      retryAfterMs === undefined
        ? `${target} is failing; calls are refused while a trial call is in flight (circuit half-open)`
        : `${target} is failing; calls are refused for ${formatSeconds(retryAfterMs)} (circuit open)`;
    super(message, Code.Unavailable, undefined, retryDetails(retryAfterMs));
    this.target = target;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Whether a failure says the target (or the way to it) is unwell, and so counts against its circuit:
 * UNAVAILABLE and DEADLINE_EXCEEDED. Answers about the request (NOT_FOUND, INVALID_ARGUMENT,
 * FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED, PERMISSION_DENIED, and RESOURCE_EXHAUSTED, which
 * the platform's services give for a full resource, e.g. no drone free, with a retry delay...)
 * show a healthy target; INTERNAL is a bug in one method (or a request the client could not
 * encode), which waiting does not fix and which must not cut off the target's other methods.
 */
export function isInfrastructureFailure(err: unknown): boolean {
  if (!(err instanceof ConnectError) || err instanceof CircuitOpenError) {
    return false;
  }
  return err.code === Code.Unavailable || err.code === Code.DeadlineExceeded;
}

export interface BreakerOptions {
  readonly failureRatio: number;
  readonly windowMs: number;
  readonly minCalls: number;
  readonly halfOpenAfterMs: number;
  /**
   * A stream that neither answered nor failed within this time counts as established (a success),
   * so a quiet trial stream cannot hold the circuit half-open. Default 1000 ms.
   */
  readonly streamSettleMs?: number;
}

/** What a streaming call reports to the breaker that admitted it; later reports are ignored. */
export interface StreamOutcome {
  /** The target answered (a response or response headers): a success. */
  established(): void;
  /** The stream ended; an infrastructure failure before `established()` counts against the circuit. */
  finished(error?: unknown): void;
}

const DEFAULT_STREAM_SETTLE_MS = 1_000;

export class TargetBreaker {
  private readonly policy: CircuitBreakerPolicy;
  private readonly listener: IDisposable;
  private readonly halfOpenAfterMs: number;
  private readonly streamSettleMs: number;
  private openedAt = 0;

  constructor(
    private readonly target: string,
    options: BreakerOptions,
    private readonly hooks: Pick<ResilienceHooks, "onStateChange" | "onCircuitRejected"> = {},
  ) {
    this.halfOpenAfterMs = options.halfOpenAfterMs;
    this.streamSettleMs = options.streamSettleMs ?? DEFAULT_STREAM_SETTLE_MS;
    this.policy = circuitBreaker(handleWhen(isInfrastructureFailure), {
      halfOpenAfter: options.halfOpenAfterMs,
      breaker: new WindowBreaker({
        failureRatio: options.failureRatio,
        windowMs: options.windowMs,
        minCalls: options.minCalls,
      }),
    });
    this.listener = this.policy.onStateChange((state) => {
      if (state === CircuitState.Open) {
        this.openedAt = Date.now();
      }
      callHook(() => this.hooks.onStateChange?.(this.target, stateName(state)));
    });
  }

  /**
   * The circuit's state. An open circuit whose delay has passed still reads "open" until the next
   * call, which becomes the trial call ("half_open").
   */
  state(): CircuitStateName {
    return stateName(this.policy.state);
  }

  /**
   * Throws a CircuitOpenError when the circuit refuses calls now: open and within its delay, or
   * half-open with a trial call in flight (other calls are refused rather than queued behind it).
   */
  admit(path: string): void {
    const refusal = this.refusal();
    if (refusal !== undefined) {
      callHook(() => this.hooks.onCircuitRejected?.(this.target, path));
      throw refusal;
    }
  }

  /** Runs one attempt through the circuit, which records its outcome. */
  run<T>(path: string, attempt: () => Promise<T>): Promise<T> {
    try {
      this.admit(path);
    } catch (err) {
      return Promise.reject(err);
    }
    // Not an async function: the policy's promise with one handler, not two more promises per call.
    return this.policy.execute(attempt).catch((err: unknown) => {
      if (isBrokenCircuitError(err)) {
        // Opened between the check above and the call (same millisecond): the same refusal.
        callHook(() => this.hooks.onCircuitRejected?.(this.target, path));
        throw this.refusal() ?? new CircuitOpenError(this.target, this.halfOpenAfterMs);
      }
      throw err;
    });
  }

  /**
   * Admits a streaming call (or throws a CircuitOpenError). The stream's outcome, as reported
   * through the returned StreamOutcome, is recorded like a unary call's: established is a
   * success, an infrastructure failure before that is a failure.
   */
  admitStream(path: string): StreamOutcome {
    this.admit(path);
    let settle: (error: unknown) => void = noop;
    const outcome = new Promise<void>((resolve, reject) => {
      settle = (error) => (error === undefined ? resolve() : reject(error));
    });
    let settled = false;
    const finish = (error: unknown): void => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        settle(error);
      }
    };
    const timer = setTimeout(() => finish(undefined), this.streamSettleMs);
    timer.unref();
    // The stream's own consumer sees its errors; here they only feed the circuit.
    this.policy.execute(() => outcome).catch(noop);
    return { established: () => finish(undefined), finished: (error) => finish(error) };
  }

  dispose(): void {
    this.listener.dispose();
  }

  private refusal(): CircuitOpenError | undefined {
    switch (this.policy.state) {
      case CircuitState.Closed:
        return undefined;
      case CircuitState.HalfOpen:
        return new CircuitOpenError(this.target, undefined);
      case CircuitState.Open: {
        const remainingMs = this.openedAt + this.halfOpenAfterMs - Date.now();
        return remainingMs > 0 ? new CircuitOpenError(this.target, remainingMs) : undefined;
      }
      case CircuitState.Isolated:
        return new CircuitOpenError(this.target, this.halfOpenAfterMs);
    }
  }
}

function stateName(state: CircuitState): CircuitStateName {
  switch (state) {
    case CircuitState.Closed:
      return "closed";
    case CircuitState.HalfOpen:
      return "half_open";
    case CircuitState.Open:
    case CircuitState.Isolated:
      return "open";
  }
}

/** "0.3s", "4.5s", "12s": seconds with one decimal under 10 s, rounded up. */
function formatSeconds(ms: number): string {
  if (ms >= 10_000) {
    return `${Math.ceil(ms / 1000)}s`;
  }
  return `${Math.max(1, Math.ceil(ms / 100)) / 10}s`;
}

function noop(): void {}
