/**
 * The gateway in front of the whole platform, for the gateway's tests: a private nats-server,
 * every service in-process with fast flights, the gateway on free ports, and tokens for two
 * accounts.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, type TestNatsServer } from "../test/harness/nats-server.js";
import { startPlatform, type TestPlatform } from "../test/harness/platform.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { IDEMPOTENCY_BUCKET } from "./idempotency.js";
import { startGateway, type RunningGateway } from "./module.js";
import { mintToken } from "./tokens.js";

/** Shared by the test files (made once, reused while valid; safe when files start at once). */
export const TEST_PKI_DIR = join(tmpdir(), "dronedelivery-test-pki");

export interface GatewayStack {
  nats: TestNatsServer;
  platform: TestPlatform;
  gateway: RunningGateway;
  /** A token for acct-demo. */
  demoToken: string;
  /** A token for acct-contoso, who owns none of acct-demo's deliveries. */
  contosoToken: string;
  stop(): Promise<void>;
}

export async function startGatewayStack(secret: string): Promise<GatewayStack> {
  const nats = await startNatsServer();
  const platform = await startPlatform(nats.url, {
    env: {
      // The whole path runs as in production: mutual TLS and the caller authorization table.
      INTERNAL_TLS: "on",
      INTERNAL_PKI_DIR: TEST_PKI_DIR,
      DRONE_TIME_SCALE: "120",
      DRONE_TELEMETRY_HZ: "5",
      DRONE_FLEET_SIZE: "6",
      DRONE_MAX_PAYLOADS_KG: "5",
      SCHEDULER_RETRY_BASE_MS: "100",
      SCHEDULER_RETRY_MAX_MS: "400",
    },
  });
  const gateway = await startGateway({
    env: {
      ...platform.env,
      NATS_URL: nats.url,
      GATEWAY_JWT_SECRET: secret,
      GATEWAY_PORT: "0",
      GATEWAY_GRPC_PORT: "0",
      // Tests and benchmarks send far more than a client's allowance; edge.test.ts covers the limit.
      GATEWAY_RATE_LIMIT_REQUESTS: "0",
      // An internal call on a machine loaded by another run can outlast the production default (5 s);
      // the deadline tests set their own.
      GATEWAY_CALL_TIMEOUT_MS: "30000",
    },
  });
  await idempotencyBucketOpened(nats.url);
  return {
    nats,
    platform,
    gateway,
    demoToken: await mintToken("acct-demo", secret),
    contosoToken: await mintToken("acct-contoso", secret),
    async stop() {
      await gateway.close();
      await platform.stop();
      await nats.stop();
    },
  };
}

/**
 * Waits (bounded) until the gateway's idempotency bucket exists: the gateway opens it in the
 * background and checks no reused key before, which a test that reuses one must not race.
 */
async function idempotencyBucketOpened(natsUrl: string): Promise<void> {
  const nc = await connectNats({ url: natsUrl, name: "gateway-test-stack" });
  try {
    const jsm = await nc.jetstreamManager();
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        await jsm.streams.info(`KV_${IDEMPOTENCY_BUCKET}`);
        return;
      } catch (error) {
        if (Date.now() > until) throw new Error(`the gateway did not open its idempotency bucket within 60 s`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await drainQuietly(nc);
  }
}
