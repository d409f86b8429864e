import type { HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { streamCallOptions, unaryCallOptions } from "./call-options.js";

function context(timeoutMs: number | undefined, headers: Record<string, string> = {}): HandlerContext {
  return { timeoutMs: () => timeoutMs, signal: new AbortController().signal, requestHeader: new Headers(headers) } as unknown as HandlerContext;
}

describe("internal call options", () => {
  it("give internal calls the caller's remaining time, else the default", () => {
    const withTimeout = context(1234);
    expect(unaryCallOptions(withTimeout, 5000)).toEqual({ timeoutMs: 1234, signal: withTimeout.signal });
    expect(unaryCallOptions(context(undefined), 5000).timeoutMs).toBe(5000);
    expect(unaryCallOptions(context(-5), 5000).timeoutMs).toBe(1);
  });

  it("give streams the caller's timeout only, and always the caller's signal", () => {
    const open = context(undefined);
    expect(streamCallOptions(open)).toEqual({ signal: open.signal });
    expect(streamCallOptions(context(30_000)).timeoutMs).toBe(30_000);
  });

  it("pass the caller's x-canary flag on as metadata, and nothing without one", () => {
    expect(unaryCallOptions(context(undefined, { "x-canary": "1" }), 5000).metadata).toEqual({ "x-canary": "1" });
    expect(unaryCallOptions(context(undefined, { "X-Canary": "false" }), 5000).metadata).toEqual({ "x-canary": "0" });
    expect(streamCallOptions(context(undefined, { "x-canary": "yes" })).metadata).toEqual({ "x-canary": "1" });
    expect(unaryCallOptions(context(undefined, { "x-canary": "perhaps" }), 5000)).not.toHaveProperty("metadata");
    expect(streamCallOptions(context(undefined))).not.toHaveProperty("metadata");
  });
});
