// Retries of one target's calls: only methods whose contract says repeating them is safe, only for
// UNAVAILABLE, with exponential backoff and full jitter, never past the call's deadline, and within
// the target's retry budget.
//
// The loop is our own rather than cockatiel's RetryPolicy, which cannot stop before a backoff that
// would end past the deadline, cannot ask the retry budget before each retry, and sleeps through an
// aborted call. The backoff delays do come from cockatiel (ExponentialBackoff, fullJitterGenerator).

import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ExponentialBackoff, fullJitterGenerator, type IBackoff } from "cockatiel";
import { setTimeout as sleep } from "node:timers/promises";
import { retryDelayMs } from "../grpc/errors.js";
import { CircuitOpenError } from "./breaker.js";
import { callHook, type ResilienceHooks } from "./hooks.js";
import { isRepeatable, isStreaming } from "./method-class.js";
import type { RetryBudget } from "./retry-budget.js";

export type RetryHooks = Pick<ResilienceHooks, "onRetry" | "onRetryThrottled">;

export interface RetrierOptions {
  /** Attempts per call, the first included. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** A retry is sent only when at least this much time is left after its backoff. */
  readonly floorMs: number;
  readonly budget: RetryBudget;
}

/** One attempt of a call; `attemptNumber` starts at 1. */
export type Attempt<T> = (attemptNumber: number) => Promise<T>;

export class Retrier {
  private readonly backoff: ExponentialBackoff<number>;

  constructor(
    private readonly target: string,
    private readonly options: RetrierOptions,
    private readonly hooks: RetryHooks = {},
  ) {
    this.backoff = new ExponentialBackoff({
      generator: fullJitterGenerator,
      initialDelay: options.initialBackoffMs,
      maxDelay: options.maxBackoffMs,
      exponent: 2,
    });
  }

  /**
   * Runs `attempt` until it succeeds or must not be repeated: the method is not repeatable, the
   * failure is not retryable, the attempts are used up, the backoff would end too close to the
   * deadline, the retry budget is spent, or `signal` aborts during a backoff (CANCELLED). The last
   * attempt's error is thrown.
   */
  run<T>(method: DescMethod, path: string, deadline: Date, signal: AbortSignal | undefined, attempt: Attempt<T>): Promise<T> {
    this.options.budget.recordCall();
    // The first attempt is the call itself (most calls need no other): the retry loop starts only
    // when it failed.
    let first: Promise<T>;
    try {
      first = attempt(1);
    } catch (err) {
      first = Promise.reject(err);
    }
    return first.catch((err: unknown) => this.retryAfter(method, path, deadline, signal, attempt, err));
  }

  /** Attempts 2, 3, ... after the first failed with `firstError`, while the failure allows one. */
  private async retryAfter<T>(
    method: DescMethod,
    path: string,
    deadline: Date,
    signal: AbortSignal | undefined,
    attempt: Attempt<T>,
    firstError: unknown,
  ): Promise<T> {
    const repeatable = isRepeatable(method) && !isStreaming(method);
    let backoff: IBackoff<unknown> | undefined;
    let err = firstError;
    for (let attemptNumber = 1; ; attemptNumber++) {
      const failure = err;
      if (!repeatable || attemptNumber >= this.options.maxAttempts || !isRetryableFailure(failure)) {
        throw failure;
      }
      backoff = backoff === undefined ? this.backoff.next() : backoff.next(undefined);
      // A server that asks for a longer pause (google.rpc.RetryInfo) gets it.
      const delayMs = Math.max(backoff.duration, retryDelayMs(err) ?? 0);
      if (Date.now() + delayMs + this.options.floorMs >= deadline.getTime()) {
        throw err;
      }
      if (!this.options.budget.tryRetry()) {
        callHook(() => this.hooks.onRetryThrottled?.(this.target, path, failure));
        throw err;
      }
      callHook(() => this.hooks.onRetry?.(this.target, path, attemptNumber + 1, failure));
      await pause(delayMs, signal, path);
      if (deadline.getTime() - Date.now() < Math.max(1, this.options.floorMs)) {
        throw err;
      }
      try {
        return await attempt(attemptNumber + 1);
      } catch (next) {
        err = next;
      }
    }
  }
}

/**
 * Whether a failed attempt may be repeated (for a method that allows it): UNAVAILABLE from the
 * target or the channel. Not a refusal of our own open circuit, which an immediate retry would only
 * meet again; not DEADLINE_EXCEEDED, because every attempt runs to the call's full deadline, so an
 * attempt that timed out leaves no time for another.
 */
export function isRetryableFailure(err: unknown): err is ConnectError {
  return err instanceof ConnectError && err.code === Code.Unavailable && !(err instanceof CircuitOpenError);
}

async function pause(ms: number, signal: AbortSignal | undefined, path: string): Promise<void> {
  try {
    signal?.throwIfAborted();
    await sleep(ms, undefined, signal === undefined ? {} : { signal });
  } catch (err) {
    throw signal?.aborted === true ? cancelled(path, signal) : err;
  }
}

function cancelled(path: string, signal: AbortSignal): ConnectError {
  return new ConnectError(`${path}: call cancelled by the caller`, Code.Canceled, undefined, undefined, signal.reason);
}
