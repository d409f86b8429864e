// When a circuit opens: a failure ratio over a sliding time window with a minimum number of calls,
// as a cockatiel IBreaker. cockatiel's own SamplingBreaker takes a minimum rate rather than a count,
// and after an idle period drops only one of its stale buckets per new call, so failures from long
// ago still count; this one drops every bucket older than the window.

import { CircuitState, type IBreaker } from "cockatiel";

export interface WindowBreakerOptions {
  /** Opens when failures / calls in the window reach this ratio (0 < ratio <= 1)... */
  readonly failureRatio: number;
  /** ...over this many milliseconds... */
  readonly windowMs: number;
  /** ...with at least this many calls in the window. */
  readonly minCalls: number;
  /** The current time in ms; defaults to Date.now. */
  readonly now?: () => number;
}

interface Bucket {
  startedAt: number;
  successes: number;
  failures: number;
}

/** Buckets per window: the window slides in steps of a tenth of its length. */
const BUCKETS = 10;

export class WindowBreaker implements IBreaker {
  private readonly failureRatio: number;
  private readonly windowMs: number;
  private readonly minCalls: number;
  private readonly bucketMs: number;
  private readonly now: () => number;
  private buckets: Bucket[] = [];

  constructor(options: WindowBreakerOptions) {
    this.failureRatio = options.failureRatio;
    this.windowMs = options.windowMs;
    this.minCalls = options.minCalls;
    this.bucketMs = Math.max(1, options.windowMs / BUCKETS);
    this.now = options.now ?? Date.now;
  }

  /** The buckets, for cockatiel's toJSON/initialState. */
  get state(): unknown {
    return this.buckets.map((b) => ({ ...b }));
  }

  set state(value: unknown) {
    this.buckets = Array.isArray(value) ? (value as Bucket[]).map((b) => ({ ...b })) : [];
  }

  success(state: CircuitState): void {
    if (state === CircuitState.HalfOpen) {
      // The trial call succeeded: the circuit closes with a clean slate.
      this.buckets = [];
    }
    this.record(true);
  }

  failure(state: CircuitState): boolean {
    this.record(false);
    if (state !== CircuitState.Closed) {
      return true;
    }
    const { calls, failures } = this.totals();
    return calls >= this.minCalls && failures >= this.failureRatio * calls;
  }

  /** Calls and failures in the current window. */
  totals(): { calls: number; failures: number } {
    this.expire(this.now());
    let calls = 0;
    let failures = 0;
    for (const bucket of this.buckets) {
      calls += bucket.successes + bucket.failures;
      failures += bucket.failures;
    }
    return { calls, failures };
  }

  private record(success: boolean): void {
    const now = this.now();
    this.expire(now);
    let bucket = this.buckets[this.buckets.length - 1];
    if (bucket === undefined || now - bucket.startedAt >= this.bucketMs) {
      bucket = { startedAt: now, successes: 0, failures: 0 };
      this.buckets.push(bucket);
    }
    if (success) {
      bucket.successes++;
    } else {
      bucket.failures++;
    }
  }

  /** Drops the buckets that started before the window. */
  private expire(now: number): void {
    const since = now - this.windowMs;
    let stale = 0;
    while (stale < this.buckets.length && (this.buckets[stale]?.startedAt ?? now) <= since) {
      stale++;
    }
    if (stale > 0) {
      this.buckets.splice(0, stale);
    }
  }
}
