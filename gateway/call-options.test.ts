import type { HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { streamCallOptions, unaryCallOptions } from "./call-options.js";

function context(timeoutMs: number | undefined): HandlerContext {
  return { timeoutMs: () => timeoutMs, signal: new AbortController().signal } as unknown as HandlerContext;
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
});
