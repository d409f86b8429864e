/**
 * The rate limit shared by gateway instances through NATS: the reservation arithmetic, two
 * instances' limiters over one real KV bucket (never more than the allowance admitted in total,
 * however calls interleave), two real gateways over HTTP (one allowance between them, as the
 * `gateway` NATS user with its permissions), and the fall-back to counting alone when the bucket
 * cannot be reached.
 */
import type { NatsConnection } from "nats";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBucket } from "../../lib/nats/kv.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startGateway, type RunningGateway } from "../module.js";
import { TEST_PKI_DIR } from "../test-stack.js";
import { mintToken } from "../tokens.js";
import { grantOf, kvCounter, MAX_BATCH, RATE_LIMIT_BUCKET, sharedWindowLimiter, type Decision, type SharedCounter } from "./shared-rate-limit.js";

const SECRET = "shared-rate-limit-test-secret-0123";

let nats: TestNatsServer;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  nats = await startNatsServer({ auth: true });
}, 60_000);

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => undefined);
  await nats?.stop();
}, 30_000);

/** A limiter that never decides alone: a call it sends to `local` fails the test. */
const noLocal = async (): Promise<Decision> => {
  throw new Error("the shared counter was reachable; no call may be decided in memory");
};

describe("grantOf", () => {
  it("reserves what is asked, at most a quarter of what is left (at least one), never beyond the allowance", () => {
    expect(grantOf(0, 1, 600)).toBe(1);
    expect(grantOf(0, 64, 600)).toBe(64);
    expect(grantOf(0, 256, 600)).toBe(150);
    expect(grantOf(597, 8, 600)).toBe(1);
    expect(grantOf(599, 8, 600)).toBe(1);
    expect(grantOf(600, 8, 600)).toBe(0);
    expect(grantOf(700, 8, 600)).toBe(0);
  });
});

describe("two instances over one KV bucket", () => {
  it("admit exactly the allowance in total, whichever instance the calls reach and however they overlap", async () => {
    const instances = await Promise.all(
      ["a", "b"].map(async (name) => {
        const nc = await nats.connectAs("gateway", { name: `limiter-${name}` });
        connections.push(nc);
        const kv = await openBucket(nc.jetstream(), RATE_LIMIT_BUCKET, { history: 1, ttlMs: 120_000 });
        return kvCounter(kv);
      }),
    );
    const requests = 100;
    // One fixed instant: the whole test lies in one window.
    const now = () => 60_000 * 20_000_000 + 1_234;
    const limiters = instances.map((counter) =>
      sharedWindowLimiter({ requests, windowSeconds: 60, counter: () => counter, local: noLocal, now }),
    );
    // 300 calls of one client, the instances taking turns unevenly, in bursts of 10 at once.
    let admitted = 0;
    let refused = 0;
    for (let burst = 0; burst < 30; burst++) {
      const decisions = await Promise.all(
        Array.from({ length: 10 }, (_, i) => limiters[(burst * 10 + i) % 3 === 0 ? 1 : 0]!("token:client-one")),
      );
      for (const d of decisions) {
        if (d.admitted) admitted++;
        else {
          refused++;
          expect(d.msBeforeNext).toBe(60_000 - 1_234);
        }
      }
    }
    expect(admitted).toBeLessThanOrEqual(requests);
    // What the instances reserved and did not use is small: most of the allowance is spent.
    expect(admitted).toBeGreaterThanOrEqual(requests - 10);
    expect(admitted + refused).toBe(300);

    // Another client has an allowance of its own.
    expect(await limiters[1]!("token:client-two")).toEqual({ admitted: true });
  });

  it("reserves in doubling batches, so that a busy client costs few writes", async () => {
    let reservations = 0;
    const counts = new Map<string, number>();
    const counter: SharedCounter = {
      async reserve(key, want, limit) {
        reservations++;
        const count = counts.get(key) ?? 0;
        const grant = grantOf(count, want, limit);
        counts.set(key, count + grant);
        return grant;
      },
    };
    const limit = sharedWindowLimiter({ requests: 1_000_000, windowSeconds: 60, counter: () => counter, local: noLocal, now: () => 5_000 });
    for (let i = 0; i < 5_000; i++) expect((await limit("token:busy")).admitted).toBe(true);
    // 1 + 2 + 4 + ... + 256, then batches of MAX_BATCH: about 25 writes for 5,000 calls.
    expect(reservations).toBeLessThan(9 + Math.ceil(5_000 / MAX_BATCH) + 1);
  });
});

describe("while the bucket cannot be reached", () => {
  it("each instance counts alone (in memory) and says so once", async () => {
    const warnings: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => warnings.push(line) });
    let localCalls = 0;
    let localLeft = 3;
    const failing: SharedCounter = {
      reserve: async () => {
        throw new Error("TIMEOUT");
      },
    };
    let at = 10_000;
    const limit = sharedWindowLimiter({
      requests: 3,
      windowSeconds: 60,
      counter: () => failing,
      local: async () => {
        localCalls++;
        return localLeft-- > 0 ? { admitted: true } : { admitted: false, msBeforeNext: 1_000 };
      },
      now: () => at,
      log,
    });
    const decisions: Decision[] = [];
    for (let i = 0; i < 5; i++) {
      decisions.push(await limit("token:x"));
      at += 10;
    }
    expect(decisions.map((d) => d.admitted)).toEqual([true, true, true, false, false]);
    expect(localCalls).toBe(5);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/counts calls alone/);
  });
});

describe("a gateway whose NATS cannot be reached", () => {
  it("limits each client alone, in memory, and says so", { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const gateway = await startGateway({
      env: {
        // Nothing listens on port 9: NATS is unreachable from the start.
        NATS_URL: "nats://127.0.0.1:9",
        NATS_AUTH: "off",
        GATEWAY_JWT_SECRET: SECRET,
        INTERNAL_PKI_DIR: TEST_PKI_DIR,
        GATEWAY_PORT: "0",
        GATEWAY_GRPC_PORT: "0",
        GATEWAY_RATE_LIMIT_REQUESTS: "3",
        GATEWAY_RATE_LIMIT_WINDOW_SECONDS: "3600",
        INGESTION_ADDRESS: "127.0.0.1:9",
        DELIVERY_ADDRESS: "127.0.0.1:9",
      },
      log: pino({ level: "info" }, { write: (line: string) => lines.push(line) }),
    });
    try {
      const headers = { authorization: `Bearer ${await mintToken("acct-alone", SECRET)}` };
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await fetch(`${gateway.url}/v1/deliveries/dlv-x`, { headers })).status);
      expect(statuses.slice(0, 3).every((s) => s !== 429)).toBe(true);
      expect(statuses.slice(3)).toEqual([429, 429]);
      const deadline = Date.now() + 30_000;
      while (!lines.some((l) => l.includes("counts calls alone"))) {
        if (Date.now() > deadline) throw new Error(`no log line about counting alone:\n${lines.join("")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await gateway.close();
    }
  });
});

describe("two gateways", () => {
  const gateways: RunningGateway[] = [];
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
  }, 30_000);

  it("share one allowance per client: the calls to both together are limited, as the gateway NATS user", { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    for (let i = 0; i < 2; i++) {
      gateways.push(
        await startGateway({
          env: {
            ...nats.serviceEnv,
            GATEWAY_JWT_SECRET: SECRET,
            INTERNAL_PKI_DIR: TEST_PKI_DIR,
            GATEWAY_PORT: "0",
            GATEWAY_GRPC_PORT: "0",
            GATEWAY_RATE_LIMIT_REQUESTS: "8",
            GATEWAY_RATE_LIMIT_WINDOW_SECONDS: "3600",
            // Nothing listens here: the calls that pass the limit fail further on, never with 429.
            INGESTION_ADDRESS: "127.0.0.1:9",
            DELIVERY_ADDRESS: "127.0.0.1:9",
          },
          log: pino({ level: "info" }, { write: (line: string) => lines.push(line) }),
        }),
      );
    }
    // Both have opened the shared bucket.
    const deadline = Date.now() + 30_000;
    while (lines.filter((l) => l.includes("rate limit shared with the other gateway instances")).length < 2) {
      if (Date.now() > deadline) throw new Error(`the gateways did not open the shared bucket:\n${lines.join("")}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // One hour-long window: should the calls straddle two windows, the scenario runs again.
    for (let round = 0; round < 3; round++) {
      const windowBefore = Math.floor(Date.now() / 3_600_000);
      const headers = { authorization: `Bearer ${await mintToken(`acct-shared-${round}`, SECRET)}` };
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const gateway = gateways[i % 2]!;
        statuses.push((await fetch(`${gateway.url}/v1/deliveries/dlv-x`, { headers })).status);
      }
      if (Math.floor(Date.now() / 3_600_000) !== windowBefore) continue;
      const passed = statuses.filter((s) => s !== 429).length;
      // Alone, each gateway would have let 8 through (16 in all).
      expect(passed).toBeLessThanOrEqual(8);
      expect(passed).toBeGreaterThanOrEqual(6);
      // Both gateways refuse once the allowance is spent.
      expect(statuses.slice(-2)).toEqual([429, 429]);
      return;
    }
    throw new Error("every round straddled two windows");
  });
});
