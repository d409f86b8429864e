// Recovery after a dependency restarts: the Delivery service runs as its own process behind the
// gateway (mutual TLS, as in production). It is SIGKILLed, the gateway is asked while it is down
// (503s, the circuit opens, the channel backs off), then it is started again on the same port. The
// gateway's reads, its /readyz and the Scheduler's calls (a new delivery gets created) must come
// back within a bounded number of attempts, not minutes later.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { nodeArgsFor } from "../lib/devtools/service-command.js";
import { ensureDevPki, PKI_IDENTITIES } from "../lib/security/index.js";
import { waitForHealth } from "../lib/service/health-probe.js";
import { hermeticEnv } from "../test/harness/hermetic.js";
import { startNatsServer, type TestNatsServer } from "../test/harness/nats-server.js";
import { startPlatform, type TestPlatform } from "../test/harness/platform.js";
import { startGateway, type RunningGateway } from "./module.js";
import { TEST_PKI_DIR } from "./test-stack.js";
import { mintToken } from "./tokens.js";
import { freePort } from "../test/harness/ports.js";

const root = join(import.meta.dirname, "..");
const SECRET = "recovery-test-secret-recovery";
const TLS_ENV = { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: TEST_PKI_DIR, ...hermeticEnv() };
/** Calls made while the service is down: enough for the channel's backoff to grow. */
const CALLS_WHILE_DOWN = 40;
const PAUSE_MS = 200;
/**
 * Calls allowed after the restarted service reports SERVING before one succeeds: 40 × 200 ms is
 * 8 s plus the calls' own time, generous against a 1 s reconnect cap and a 2 s half-open delay;
 * with grpc-js's default backoff (growing to 120 s) and a 5 s half-open delay it took longer.
 */
const MAX_CALLS_TO_RECOVER = 40;

let nats: TestNatsServer;
let platform: TestPlatform | undefined;
let gateway: RunningGateway | undefined;
let token: string;
let deliveryPort: number;
let deliveryChild: ChildProcess | undefined;

/** Starts the Delivery service process on `deliveryPort` and waits until it is SERVING. */
async function startDelivery(): Promise<ChildProcess> {
  // Compiled when the build is current (make vitest builds first), else through tsx.
  const child = spawn(process.execPath, nodeArgsFor("services/delivery/main.ts"), {
    cwd: root,
    env: {
      ...process.env,
      ...TLS_ENV,
      NATS_URL: nats.url,
      DELIVERY_PORT: String(deliveryPort),
      DELIVERY_METRICS_PORT: "off",
      SHUTDOWN_DRAIN_DELAY_MS: "0",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const address = `127.0.0.1:${deliveryPort}`;
  const health = await waitForHealth(address, { timeoutMs: 30_000, intervalMs: 200, env: TLS_ENV });
  if (!health.ok) {
    child.kill("SIGKILL");
    throw new Error(`delivery at ${address}: ${health.last}`);
  }
  return child;
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

const pause = () => new Promise((resolve) => setTimeout(resolve, PAUSE_MS));

/** Calls `attempt` every PAUSE_MS until it answers true; the number of calls it took. */
async function callsUntil(attempt: () => Promise<boolean>, max: number): Promise<number> {
  for (let calls = 1; calls <= max; calls++) {
    if (await attempt()) return calls;
    await pause();
  }
  return Number.POSITIVE_INFINITY;
}

beforeAll(async () => {
  nats = await startNatsServer();
  await ensureDevPki(TEST_PKI_DIR, PKI_IDENTITIES);
  deliveryPort = await freePort();
  deliveryChild = await startDelivery();
  platform = await startPlatform(nats.url, {
    only: ["account", "package", "drone", "thirdparty", "ingestion", "scheduler", "supervisor"],
    env: {
      ...TLS_ENV,
      DELIVERY_ADDRESS: `127.0.0.1:${deliveryPort}`,
      DRONE_TIME_SCALE: "120",
      DRONE_FLEET_SIZE: "4",
      SCHEDULER_RETRY_BASE_MS: "100",
      SCHEDULER_RETRY_MAX_MS: "400",
    },
  });
  gateway = await startGateway({
    env: { ...platform.env, NATS_URL: nats.url, GATEWAY_JWT_SECRET: SECRET, GATEWAY_PORT: "0", GATEWAY_GRPC_PORT: "0", GATEWAY_RATE_LIMIT_REQUESTS: "0" },
  });
  token = await mintToken("acct-demo", SECRET);
}, 120_000);

afterAll(async () => {
  await gateway?.close();
  await platform?.stop();
  await kill(deliveryChild);
  await nats?.stop();
});

async function schedule(key: string): Promise<string> {
  const res = await fetch(`${gateway!.url}/v1/deliveryrequests`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify({
      pickup: { latitude: 47.61, longitude: -122.33 },
      dropoff: { latitude: 47.63, longitude: -122.36 },
      deadline: new Date(Date.now() + 86_400_000).toISOString(),
      packageInfo: { packageId: `pkg-${key}`, size: "PACKAGE_SIZE_SMALL", weightKg: 1 },
    }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { deliveryId: string }).deliveryId;
}

const read = (deliveryId: string) =>
  fetch(`${gateway!.url}/v1/deliveries/${deliveryId}`, { headers: { authorization: `Bearer ${token}` } });

describe("a dependency restarted on the same port", () => {
  it("is served again through the gateway and by its internal callers within a bounded number of calls", async () => {
    const before = await schedule("recovery-before");
    await vi.waitFor(async () => expect((await read(before)).status).toBe(200), { timeout: 30_000, interval: 100 });

    await kill(deliveryChild);
    const downStatuses: number[] = [];
    for (let i = 0; i < CALLS_WHILE_DOWN; i++) {
      const res = await read(before);
      await res.arrayBuffer();
      downStatuses.push(res.status);
      await pause();
    }
    // The platform is down for reads, and says so (503/504), not 500.
    expect(downStatuses.every((s) => s === 503 || s === 504)).toBe(true);
    expect((await fetch(`${gateway!.url}/readyz`)).status).toBe(503);

    deliveryChild = await startDelivery();

    const readCalls = await callsUntil(async () => {
      const res = await read(before);
      await res.arrayBuffer();
      return res.status === 200;
    }, MAX_CALLS_TO_RECOVER);
    expect(readCalls).toBeLessThanOrEqual(MAX_CALLS_TO_RECOVER);

    const readyCalls = await callsUntil(async () => (await fetch(`${gateway!.url}/readyz`)).status === 200, MAX_CALLS_TO_RECOVER);
    expect(readyCalls).toBeLessThanOrEqual(MAX_CALLS_TO_RECOVER);

    // Internal callers too: the Scheduler creates the next delivery in the restarted service.
    const after = await schedule("recovery-after");
    const createdCalls = await callsUntil(async () => {
      const res = await read(after);
      const body = (await res.json()) as { stage?: string };
      // Past REQUESTED: the Scheduler's workflow has created it.
      return res.status === 200 && body.stage !== undefined && body.stage !== "DELIVERY_STAGE_REQUESTED";
    }, MAX_CALLS_TO_RECOVER);
    expect(createdCalls).toBeLessThanOrEqual(MAX_CALLS_TO_RECOVER);
  }, 180_000);
});
