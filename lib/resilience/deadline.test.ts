// Deadlines: the incoming budget follows async code and nested scopes keep the earlier deadline; an
// outgoing call's deadline is the caller's (or the class default) capped by that budget; a spent
// budget refuses the call; the RPC_* knobs are read with their defaults.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { ConfigError } from "../service/config.js";
import { DEFAULT_RESILIENCE_CONFIG, readResilienceConfig } from "./config.js";
import {
  BudgetSpentError,
  currentDeadline,
  defaultTimeoutMs,
  effectiveDeadline,
  ensureTimeLeft,
  remainingBudgetMs,
  runWithDeadline,
} from "./deadline.js";

const methods = DeliveryApiService.method;

describe("incoming budget", () => {
  it("is undefined outside any scope", () => {
    expect(currentDeadline()).toBeUndefined();
    expect(remainingBudgetMs()).toBeUndefined();
  });

  it("follows awaits and timers started inside the scope", async () => {
    const deadline = new Date(Date.now() + 60_000);
    const seen = await runWithDeadline(deadline, async () => {
      await sleep(1);
      const afterAwait = currentDeadline();
      const inTimer = await new Promise<Date | undefined>((resolve) => setTimeout(() => resolve(currentDeadline()), 1));
      return { afterAwait, inTimer };
    });
    expect(seen.afterAwait).toBe(deadline);
    expect(seen.inTimer).toBe(deadline);
    expect(currentDeadline()).toBeUndefined();
  });

  it("keeps the earlier deadline in nested scopes", () => {
    const early = new Date(Date.now() + 1_000);
    const late = new Date(Date.now() + 9_000);
    expect(runWithDeadline(early, () => runWithDeadline(late, currentDeadline))).toBe(early);
    expect(runWithDeadline(late, () => runWithDeadline(early, currentDeadline))).toBe(early);
    expect(runWithDeadline(early, () => runWithDeadline(undefined, currentDeadline))).toBe(early);
    expect(runWithDeadline(undefined, () => runWithDeadline(late, currentDeadline))).toBe(late);
    // Leaving the inner scope restores the outer budget.
    runWithDeadline(late, () => {
      runWithDeadline(early, () => undefined);
      expect(currentDeadline()).toBe(late);
    });
  });
});

describe("effectiveDeadline", () => {
  const now = 1_000_000;

  it("uses the default only when the caller set neither deadline nor timeout", () => {
    expect(effectiveDeadline({ defaultTimeoutMs: 2_000, now }).getTime()).toBe(now + 2_000);
    expect(effectiveDeadline({ timeoutMs: 30_000, defaultTimeoutMs: 2_000, now }).getTime()).toBe(now + 30_000);
    expect(effectiveDeadline({ callDeadline: new Date(now + 500), defaultTimeoutMs: 2_000, now }).getTime()).toBe(now + 500);
    expect(effectiveDeadline({ now })).toBeUndefined();
  });

  it("takes the earlier of the caller's deadline and timeout", () => {
    expect(effectiveDeadline({ callDeadline: new Date(now + 700), timeoutMs: 300, now })?.getTime()).toBe(now + 300);
    expect(effectiveDeadline({ callDeadline: new Date(now + 200), timeoutMs: 300, now })?.getTime()).toBe(now + 200);
  });

  it("never outlives the incoming budget", () => {
    const incoming = new Date(now + 400);
    runWithDeadline(incoming, () => {
      expect(effectiveDeadline({ defaultTimeoutMs: 2_000, now }).getTime()).toBe(now + 400);
      expect(effectiveDeadline({ timeoutMs: 30_000, now })?.getTime()).toBe(now + 400);
      expect(effectiveDeadline({ timeoutMs: 100, defaultTimeoutMs: 2_000, now }).getTime()).toBe(now + 100);
      expect(effectiveDeadline({ now })?.getTime()).toBe(now + 400);
    });
  });
});

describe("defaultTimeoutMs", () => {
  it("is chosen by the method's class; streams have none unless configured", () => {
    const config = { ...DEFAULT_RESILIENCE_CONFIG, readTimeoutMs: 1, idempotentWriteTimeoutMs: 2, writeTimeoutMs: 3 };
    expect(defaultTimeoutMs(methods.getDelivery, config)).toBe(1);
    expect(defaultTimeoutMs(methods.cancelDelivery, config)).toBe(2);
    expect(defaultTimeoutMs(methods.scheduleDelivery, config)).toBe(3);
    expect(defaultTimeoutMs(methods.watchDelivery, config)).toBeUndefined();
    expect(defaultTimeoutMs(methods.watchDelivery, { ...config, streamTimeoutMs: 60_000 })).toBe(60_000);
  });
});

describe("ensureTimeLeft", () => {
  const now = 1_000_000;

  it("passes with time left and without a deadline", () => {
    expect(() => ensureTimeLeft(new Date(now + 50), 5, "/x.S/M", now)).not.toThrow();
    expect(() => ensureTimeLeft(undefined, 5, "/x.S/M", now)).not.toThrow();
  });

  it("refuses with DEADLINE_EXCEEDED under the floor or past the deadline", () => {
    for (const deadline of [new Date(now + 3), new Date(now), new Date(now - 20)]) {
      let caught: unknown;
      try {
        ensureTimeLeft(deadline, 5, "/x.S/M", now);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(BudgetSpentError);
      expect((caught as BudgetSpentError).code).toBe(Code.DeadlineExceeded);
      expect((caught as BudgetSpentError).rawMessage).toMatch(/^\/x\.S\/M: deadline budget spent .*the call was not started$/);
    }
  });

  it("is a ConnectError, and no other ConnectError is a BudgetSpentError", () => {
    const spent = new BudgetSpentError("/x.S/M", -1, 5);
    expect(spent).toBeInstanceOf(ConnectError);
    expect(new ConnectError("deadline exceeded", Code.DeadlineExceeded)).not.toBeInstanceOf(BudgetSpentError);
  });
});

describe("readResilienceConfig", () => {
  it("gives the defaults for an empty environment", () => {
    expect(readResilienceConfig({})).toEqual(DEFAULT_RESILIENCE_CONFIG);
  });

  it("reads the RPC_* knobs; the write timeout covers idempotent writes unless set apart", () => {
    const config = readResilienceConfig({
      RPC_TIMEOUT_READ_MS: "800",
      RPC_TIMEOUT_WRITE_MS: "9000",
      RPC_RETRY_MAX_ATTEMPTS: "4",
      RPC_BREAKER_FAILURE_RATIO: "0.25",
      RPC_BREAKER_WINDOW_MS: "30000",
      RPC_BREAKER_MIN_CALLS: "5",
      RPC_BREAKER_HALF_OPEN_AFTER_MS: "1500",
      RPC_BULKHEAD_MAX_CONCURRENT: "8",
      RPC_BULKHEAD_QUEUE: "0",
    });
    expect(config).toMatchObject({
      readTimeoutMs: 800,
      writeTimeoutMs: 9_000,
      idempotentWriteTimeoutMs: 9_000,
      retryMaxAttempts: 4,
      breakerFailureRatio: 0.25,
      breakerWindowMs: 30_000,
      breakerMinCalls: 5,
      breakerHalfOpenAfterMs: 1_500,
      bulkheadMaxConcurrent: 8,
      bulkheadQueue: 0,
    });
    const apart = readResilienceConfig({ RPC_TIMEOUT_WRITE_MS: "9000", RPC_TIMEOUT_IDEMPOTENT_WRITE_MS: "3000" });
    expect(apart.idempotentWriteTimeoutMs).toBe(3_000);
  });

  it("stops on a bad value, naming the variable", () => {
    expect(() => readResilienceConfig({ RPC_RETRY_MAX_ATTEMPTS: "0" })).toThrow(ConfigError);
    expect(() => readResilienceConfig({ RPC_BREAKER_FAILURE_RATIO: "1.5" })).toThrow(/RPC_BREAKER_FAILURE_RATIO/);
    expect(() => readResilienceConfig({ RPC_TIMEOUT_READ_MS: "fast" })).toThrow(/RPC_TIMEOUT_READ_MS/);
  });
});
