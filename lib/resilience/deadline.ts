// Deadlines of outgoing calls: the incoming call's budget carried through async code (so a handler's
// downstream calls never outlive the caller that waits for them), the default timeout of each method
// class, and the refusal of a call whose budget is already spent.

import { AsyncLocalStorage } from "node:async_hooks";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { ConnectErrorKind } from "../grpc/errors.js";
import type { ResilienceConfig } from "./config.js";
import { isStreaming, methodClass } from "./method-class.js";

interface DeadlineScope {
  readonly deadline: Date | undefined;
}

const budget = new AsyncLocalStorage<DeadlineScope>();

/**
 * Runs `fn` with `deadline` as the budget of every call made inside it (across awaits, timers and
 * callbacks started there). Nested scopes keep the earlier deadline: an inner scope may shorten the
 * budget, never extend it. `undefined` adds no limit and keeps the enclosing budget.
 */
export function runWithDeadline<T>(deadline: Date | undefined, fn: () => T): T {
  return budget.run({ deadline: earliest(budget.getStore()?.deadline, deadline) }, fn);
}

/** The budget of the current scope (the incoming call's deadline); undefined outside any scope. */
export function currentDeadline(): Date | undefined {
  return budget.getStore()?.deadline;
}

/** Milliseconds left in the current scope's budget (may be negative); undefined without one. */
export function remainingBudgetMs(now: number = Date.now()): number | undefined {
  const deadline = currentDeadline();
  return deadline === undefined ? undefined : deadline.getTime() - now;
}

export interface DeadlineRequest {
  /** The caller's explicit deadline (CallOptions.deadline). */
  readonly callDeadline?: Date | undefined;
  /** The caller's explicit timeout (CallOptions.timeoutMs). */
  readonly timeoutMs?: number | undefined;
  /** Used only when the caller set neither `callDeadline` nor `timeoutMs`. */
  readonly defaultTimeoutMs?: number | undefined;
  /** The current time in ms since the epoch; defaults to Date.now(). */
  readonly now?: number;
}

/**
 * The deadline of an outgoing call: the earlier of the caller's explicit deadline and timeout (or
 * the default timeout when the caller set neither), capped by the incoming budget of the current
 * scope. An explicit timeout may be longer than the default; nothing outlives the incoming budget.
 * Undefined only when there is no limit at all.
 */
export function effectiveDeadline(request: DeadlineRequest & { readonly defaultTimeoutMs: number }): Date;
export function effectiveDeadline(request: DeadlineRequest): Date | undefined;
export function effectiveDeadline(request: DeadlineRequest): Date | undefined {
  const now = request.now ?? Date.now();
  // The earliest finite candidate (NaN when there is none yet): explicit limits first.
  let earliestMs = Number.NaN;
  if (request.callDeadline !== undefined) {
    earliestMs = earlierMs(earliestMs, request.callDeadline.getTime());
  }
  if (request.timeoutMs !== undefined) {
    earliestMs = earlierMs(earliestMs, now + request.timeoutMs);
  }
  if (Number.isNaN(earliestMs) && request.defaultTimeoutMs !== undefined) {
    earliestMs = earlierMs(earliestMs, now + request.defaultTimeoutMs);
  }
  const incoming = currentDeadline()?.getTime();
  if (incoming !== undefined) {
    earliestMs = earlierMs(earliestMs, incoming);
  }
  return Number.isNaN(earliestMs) ? undefined : new Date(earliestMs);
}

/** The earlier of `current` (NaN: none yet) and `candidate`, ignoring a candidate that is not finite. */
function earlierMs(current: number, candidate: number): number {
  if (!Number.isFinite(candidate)) return current;
  return Number.isNaN(current) || candidate < current ? candidate : current;
}

type TimeoutConfig = Pick<ResilienceConfig, "readTimeoutMs" | "idempotentWriteTimeoutMs" | "writeTimeoutMs" | "streamTimeoutMs">;

/**
 * The default timeout of a method: by its class for unary calls, `streamTimeoutMs` for streaming
 * calls (undefined when that is 0: a stream has no default limit).
 */
export function defaultTimeoutMs(method: DescMethod, config: TimeoutConfig): number | undefined {
  if (isStreaming(method)) {
    return config.streamTimeoutMs > 0 ? config.streamTimeoutMs : undefined;
  }
  switch (methodClass(method)) {
    case "read":
      return config.readTimeoutMs;
    case "idempotent_write":
      return config.idempotentWriteTimeoutMs;
    case "write":
      return config.writeTimeoutMs;
  }
}

/** DEADLINE_EXCEEDED for a call that was refused before it started because its budget was spent. */
export class BudgetSpentError extends ConnectErrorKind {
  /** Milliseconds that were left (negative when the deadline had passed). */
  readonly remainingMs: number;

  constructor(label: string, remainingMs: number, floorMs: number) {
    const left =
      remainingMs <= 0
        ? `the deadline passed ${Math.round(-remainingMs)} ms ago`
        : `${Math.round(remainingMs)} ms left, under the ${floorMs} ms floor`;
    super(`${label}: deadline budget spent (${left}); the call was not started`, Code.DeadlineExceeded);
    this.remainingMs = remainingMs;
  }
}

/**
 * Throws a BudgetSpentError (DEADLINE_EXCEEDED) when less than `floorMs` is left before `deadline`,
 * so that a call that cannot finish in time is never sent. No deadline: nothing to check.
 */
export function ensureTimeLeft(deadline: Date | undefined, floorMs: number, label: string, now: number = Date.now()): void {
  if (deadline === undefined) {
    return;
  }
  const remainingMs = deadline.getTime() - now;
  if (!(remainingMs >= floorMs) || remainingMs <= 0) {
    throw new BudgetSpentError(label, remainingMs, floorMs);
  }
}

function earliest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) {
    return b;
  }
  if (b === undefined) {
    return a;
  }
  return a.getTime() <= b.getTime() ? a : b;
}
