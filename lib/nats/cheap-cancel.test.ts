// The "cancelled" error nats.js makes to settle each request is made without a stack trace; every
// other error of the client is unchanged, and requests still answer and still time out.
import { ErrorCode, NatsError } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { connectNats } from "./connection.js";

describe("cheap cancel", () => {
  let nats: TestNatsServer;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it("makes the cancelled error a NatsError without frames, and leaves other errors as they were", async () => {
    const nc = await connectNats({ url: nats.url, name: "cheap-cancel-test" });
    try {
      const cancelled = NatsError.errorForCode(ErrorCode.Cancelled);
      expect(cancelled).toBeInstanceOf(NatsError);
      expect(cancelled.code).toBe(ErrorCode.Cancelled);
      expect(cancelled.stack?.split("\n").filter((l) => l.trim().startsWith("at "))).toEqual([]);
      const timeout = NatsError.errorForCode(ErrorCode.Timeout);
      expect(timeout.code).toBe(ErrorCode.Timeout);
      expect(timeout.stack).toContain(" at ");
      const chained = NatsError.errorForCode(ErrorCode.Cancelled, new Error("cause"));
      expect(chained.chainedError?.message).toBe("cause");
      expect(chained.stack).toContain(" at ");
      expect(Error.stackTraceLimit).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
  });

  it("still answers requests and still times out without a responder", async () => {
    const nc = await connectNats({ url: nats.url, name: "cheap-cancel-requests" });
    try {
      const sub = nc.subscribe("echo", { callback: (_e, m) => m.respond(m.data) });
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => nc.request("echo", new TextEncoder().encode(String(i)), { timeout: 5_000 })));
      expect(answers.map((m) => new TextDecoder().decode(m.data))).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
      sub.unsubscribe();
      await expect(nc.request("nobody.home", new Uint8Array(), { timeout: 200, noMux: false })).rejects.toBeInstanceOf(NatsError);
    } finally {
      await nc.close();
    }
  });
});
