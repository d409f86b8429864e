// Observation points of the resilience layer, for metrics and logs. Every hook is optional, and a
// hook that throws never fails the call it observes.

import type { ConnectError } from "@connectrpc/connect";

/** The state of a target's circuit. */
export type CircuitStateName = "closed" | "half_open" | "open";

export interface ResilienceHooks {
  /**
   * A failed attempt is about to be repeated. `attempt` is the number of the attempt that is about
   * to start (2 for the first retry); `error` is why the previous one failed.
   */
  readonly onRetry?: (target: string, path: string, attempt: number, error: ConnectError) => void;
  /** A retry was allowed by everything but the target's retry budget, so the call failed instead. */
  readonly onRetryThrottled?: (target: string, path: string, error: ConnectError) => void;
  /** The target's circuit changed state. */
  readonly onStateChange?: (target: string, state: CircuitStateName) => void;
  /** A call was refused because the target's circuit is open (or a trial call is in flight). */
  readonly onCircuitRejected?: (target: string, path: string) => void;
  /** A call was refused because the target's bulkhead (slots and queue) was full. */
  readonly onBulkheadRejected?: (target: string, path: string) => void;
}

/** Runs a hook; a failing hook never fails the call. */
export function callHook(hook: () => void): void {
  try {
    hook();
  } catch {
    // Hooks feed metrics and logs; their failures are theirs.
  }
}
