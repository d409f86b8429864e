/**
 * Options of the internal calls a public call makes: the caller's remaining time (or the
 * gateway's default) becomes each call's timeout, and the caller leaving cancels them.
 */
import type { HandlerContext } from "@connectrpc/connect";
import type { CallOptions } from "../lib/grpc/types.js";

/** For unary internal calls: the caller's timeout, else `defaultTimeoutMs`. */
export function unaryCallOptions(ctx: HandlerContext, defaultTimeoutMs: number): CallOptions {
  const remaining = ctx.timeoutMs();
  return { timeoutMs: remaining === undefined ? defaultTimeoutMs : Math.max(remaining, 1), signal: ctx.signal };
}

/** For streams, which last as long as the caller wants: the caller's timeout only. */
export function streamCallOptions(ctx: HandlerContext): CallOptions {
  const remaining = ctx.timeoutMs();
  return remaining === undefined ? { signal: ctx.signal } : { timeoutMs: Math.max(remaining, 1), signal: ctx.signal };
}
