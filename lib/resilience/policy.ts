// The resilience policy of one target (one address the platform calls): deadline check, bulkhead,
// circuit breaker and retries, in that order, around each outgoing call. The client factory makes
// one per target and runs every call through it.

import type { DescMethod } from "@bufbuild/protobuf";
import { methodPath } from "../grpc/codec.js";
import { TargetBreaker, type CircuitStateName, type StreamOutcome } from "./breaker.js";
import { TargetBulkhead } from "./bulkhead.js";
import { resolveResilienceConfig, type ResilienceConfig } from "./config.js";
import { defaultTimeoutMs, effectiveDeadline, ensureTimeLeft } from "./deadline.js";
import type { ResilienceHooks } from "./hooks.js";
import { Retrier } from "./retry.js";
import { RetryBudget } from "./retry-budget.js";

export { readResilienceConfig, resolveResilienceConfig, DEFAULT_RESILIENCE_CONFIG, type ResilienceConfig } from "./config.js";

/** One attempt of a unary call: send it with `attemptDeadline` as its grpc deadline. */
export type AttemptFn<T> = (attemptDeadline: Date, attemptNumber: number) => Promise<T>;

export interface ExecuteOptions {
  /** The call's overall deadline (see `deadlineFor`); no attempt or backoff runs past it. */
  readonly deadline: Date;
  /** The caller's signal: aborting ends a backoff or a wait for a bulkhead slot with CANCELLED. */
  readonly signal?: AbortSignal | undefined;
}

/** A streaming call admitted by the policy; report its outcome through the StreamOutcome members. */
export interface StreamAdmission extends StreamOutcome {
  /** The deadline to send the stream with; undefined means none. */
  readonly deadline: Date | undefined;
}

export interface TargetPolicy {
  readonly target: string;
  readonly config: ResilienceConfig;
  /**
   * The deadline of a call to `method`: the caller's deadline/timeout, or the method class's
   * default when it set neither, capped by the incoming call's budget. Undefined only for a
   * streaming call without any limit.
   */
  deadlineFor(method: DescMethod, callOptions?: { readonly deadline?: Date | undefined; readonly timeoutMs?: number | undefined }): Date | undefined;
  /**
   * Runs a unary (or client-streaming) call: refuses it with DEADLINE_EXCEEDED when its budget is
   * spent, waits for a bulkhead slot (RESOURCE_EXHAUSTED when none and the queue is full), then
   * runs attempts through the circuit breaker (UNAVAILABLE without sending while the circuit is
   * open), retrying those that may be retried. Rejects with the last attempt's error.
   */
  execute<T>(method: DescMethod, attempt: AttemptFn<T>, options: ExecuteOptions): Promise<T>;
  /**
   * Admits a server- or bidi-streaming call: only the deadline check and the circuit apply (no
   * bulkhead slot is held by a long-lived stream, and nothing is retried once a stream started).
   * Throws DEADLINE_EXCEEDED or UNAVAILABLE (circuit open) when the stream must not start.
   */
  admit(method: DescMethod, options?: { readonly deadline?: Date | undefined }): StreamAdmission;
  /** The state of the target's circuit. */
  state(): CircuitStateName;
  /** Stops listening to the breaker's events. The policy must not be used afterwards. */
  dispose(): void;
}

/** The resilience policy of `target` (e.g. its address), with `config` over the defaults. */
export function createTargetPolicy(target: string, config: Partial<ResilienceConfig> = {}, hooks: ResilienceHooks = {}): TargetPolicy {
  const resolved = resolveResilienceConfig(config);
  const breaker = new TargetBreaker(
    target,
    {
      failureRatio: resolved.breakerFailureRatio,
      windowMs: resolved.breakerWindowMs,
      minCalls: resolved.breakerMinCalls,
      halfOpenAfterMs: resolved.breakerHalfOpenAfterMs,
    },
    hooks,
  );
  const bulkheadPolicy = new TargetBulkhead(
    target,
    { maxConcurrent: resolved.bulkheadMaxConcurrent, queue: resolved.bulkheadQueue },
    hooks,
  );
  const retrier = new Retrier(
    target,
    {
      maxAttempts: resolved.retryMaxAttempts,
      initialBackoffMs: resolved.retryInitialBackoffMs,
      maxBackoffMs: resolved.retryMaxBackoffMs,
      floorMs: resolved.deadlineFloorMs,
      budget: new RetryBudget({ ratio: resolved.retryBudgetRatio, minPerSecond: resolved.retryBudgetMinPerSecond }),
    },
    hooks,
  );
  const floorMs = resolved.deadlineFloorMs;

  return {
    target,
    config: resolved,
    deadlineFor(method, callOptions) {
      return effectiveDeadline({
        callDeadline: callOptions?.deadline,
        timeoutMs: callOptions?.timeoutMs,
        defaultTimeoutMs: defaultTimeoutMs(method, resolved),
      });
    },
    execute<T>(method: DescMethod, attempt: AttemptFn<T>, options: ExecuteOptions): Promise<T> {
      const path = methodPath(method);
      const { deadline, signal } = options;
      try {
        ensureTimeLeft(deadline, floorMs, path);
        // An open circuit refuses before the call takes a bulkhead place.
        breaker.admit(path);
      } catch (err) {
        return Promise.reject(err);
      }
      // Not an async function: the bulkhead's promise is the call's, without one more to wrap it.
      return bulkheadPolicy.run(path, deadline, signal, () => {
        // The wait for a slot may have used up the budget.
        ensureTimeLeft(deadline, floorMs, path);
        return retrier.run(method, path, deadline, signal, (attemptNumber) =>
          breaker.run(path, () => attempt(deadline, attemptNumber)),
        );
      });
    },
    admit(method, options) {
      const path = methodPath(method);
      const deadline = options?.deadline;
      ensureTimeLeft(deadline, floorMs, path);
      const outcome = breaker.admitStream(path);
      return { deadline, established: outcome.established, finished: outcome.finished };
    },
    state: () => breaker.state(),
    dispose: () => breaker.dispose(),
  };
}

/** The policies of every target a process calls, one per target, sharing config and hooks. */
export interface TargetPolicies {
  /** The policy of `target`, made on first use. */
  forTarget(target: string): TargetPolicy;
  /** Disposes every policy made; for process shutdown. */
  dispose(): void;
}

export function createTargetPolicies(config: Partial<ResilienceConfig> = {}, hooks: ResilienceHooks = {}): TargetPolicies {
  const resolved = resolveResilienceConfig(config);
  const policies = new Map<string, TargetPolicy>();
  return {
    forTarget(target) {
      let policy = policies.get(target);
      if (policy === undefined) {
        policy = createTargetPolicy(target, resolved, hooks);
        policies.set(target, policy);
      }
      return policy;
    },
    dispose() {
      for (const policy of policies.values()) {
        policy.dispose();
      }
      policies.clear();
    },
  };
}
