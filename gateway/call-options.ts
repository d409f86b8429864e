/**
 * Options of the internal calls a public call makes: the caller's remaining time (or the
 * gateway's default) becomes each call's timeout, the caller leaving cancels them, and the
 * caller's canary flag (the `x-canary` request header: `1` or `0`) goes with them as metadata,
 * where the communication layer routes on it (a target's canary version, lib/comms/routing.ts).
 */
import type { HandlerContext } from "@connectrpc/connect";
import { CANARY_HEADER, parseCanaryValue } from "../lib/comms/routing.js";
import type { CallOptions } from "../lib/grpc/types.js";

/** The canary flag of the public request as internal-call metadata; undefined without one. */
function canaryMetadata(ctx: HandlerContext): Record<string, string> | undefined {
  const flag = parseCanaryValue(ctx.requestHeader?.get(CANARY_HEADER));
  return flag === undefined ? undefined : { [CANARY_HEADER]: flag ? "1" : "0" };
}

/** For unary internal calls: the caller's timeout, else `defaultTimeoutMs`. */
export function unaryCallOptions(ctx: HandlerContext, defaultTimeoutMs: number): CallOptions {
  const remaining = ctx.timeoutMs();
  const metadata = canaryMetadata(ctx);
  return {
    timeoutMs: remaining === undefined ? defaultTimeoutMs : Math.max(remaining, 1),
    signal: ctx.signal,
    ...(metadata === undefined ? {} : { metadata }),
  };
}

/** For streams, which last as long as the caller wants: the caller's timeout only. */
export function streamCallOptions(ctx: HandlerContext): CallOptions {
  const remaining = ctx.timeoutMs();
  const metadata = canaryMetadata(ctx);
  return {
    ...(remaining === undefined ? {} : { timeoutMs: Math.max(remaining, 1) }),
    signal: ctx.signal,
    ...(metadata === undefined ? {} : { metadata }),
  };
}
