// Two versions of a service side by side: two Delivery processes, SERVICE_VERSION 1.0.0 and
// 2.0.0, on one nats-server (so they share the deliveries), behind the gateway with
// DELIVERY_ADDRESS at the first and DELIVERY_CANARY_ADDRESS at the second. A public read with
// `x-canary: 1` is served by version 2, without it or with `x-canary: 0` by version 1; each
// process's metrics count its served calls under its own version label. Before that, the routing
// rule on its own (flag, weight) over stand-in clients.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { startGateway, type RunningGateway } from "../../gateway/module.js";
import { TEST_PKI_DIR } from "../../gateway/test-stack.js";
import { mintToken } from "../../gateway/tokens.js";
import { createCommsLayer } from "../../lib/comms/index.js";
import { canaryFlag, canarySplit, hasStreams, readCanaryRoute, streamsApart } from "../../lib/comms/routing.js";
import type { Client } from "../../lib/grpc/index.js";
import { ensureDevPki, PKI_IDENTITIES } from "../../lib/security/index.js";
import { waitForHealth } from "../../lib/service/health-probe.js";
import { hermeticEnv } from "../harness/hermetic.js";
import { startNatsServer, type TestNatsServer } from "../harness/nats-server.js";
import { freePort } from "../harness/ports.js";
import { nodeArgsFor } from "../../lib/devtools/service-command.js";

describe("the canary rule", () => {
  /** A stand-in client of Health that records which version each call reached. */
  const standIn = (name: string, reached: string[]) =>
    ({
      check: async () => {
        reached.push(name);
        return {};
      },
      watch: () => (async function* () {})(),
      close: () => reached.push(`${name} closed`),
      waitForReady: async () => {},
      grpcClient: undefined,
    }) as unknown as Client<typeof Health>;

  it("reads the flag from metadata, as a record or grpc-js Metadata", () => {
    expect(canaryFlag(undefined)).toBeUndefined();
    expect(canaryFlag({ "x-canary": "1" })).toBe(true);
    expect(canaryFlag({ "x-canary": "false" })).toBe(false);
    expect(canaryFlag({ "x-canary": "maybe" })).toBeUndefined();
    expect(canaryFlag({ other: "1" })).toBeUndefined();
    const metadata = new grpc.Metadata();
    metadata.set("x-canary", "yes");
    expect(canaryFlag(metadata)).toBe(true);
  });

  it("reads <NAME>_CANARY_ADDRESS and <NAME>_CANARY_WEIGHT", () => {
    expect(readCanaryRoute({}, "delivery")).toBeUndefined();
    expect(readCanaryRoute({ DELIVERY_CANARY_ADDRESS: "127.0.0.1:7155" }, "delivery")).toEqual({ address: "127.0.0.1:7155", weightPercent: 0 });
    expect(readCanaryRoute({ DELIVERY_CANARY_ADDRESS: "x:1", DELIVERY_CANARY_WEIGHT: "10" }, "delivery")?.weightPercent).toBe(10);
    expect(() => readCanaryRoute({ DELIVERY_CANARY_ADDRESS: "x:1", DELIVERY_CANARY_WEIGHT: "101" }, "delivery")).toThrow(/DELIVERY_CANARY_WEIGHT/);
  });

  it("sends flagged calls to the canary, flag 0 to the first version, the rest by weight", async () => {
    const reached: string[] = [];
    // Weight 25 %: the draws 0.1 and 0.2 fall under it, 0.3 and 0.9 do not.
    const draws = [0.1, 0.3, 0.9, 0.2];
    const client = canarySplit(Health, standIn("v1", reached), standIn("v2", reached), 25, () => draws.shift()!);
    await client.check({ service: "" }, { metadata: { "x-canary": "1" } });
    await client.check({ service: "" }, { metadata: { "x-canary": "0" } });
    for (let i = 0; i < 4; i++) await client.check({ service: "" });
    expect(reached).toEqual(["v2", "v1", "v2", "v1", "v1", "v2"]);
    expect(draws).toEqual([]); // flagged calls drew nothing

    const none: string[] = [];
    const unweighted = canarySplit(Health, standIn("v1", none), standIn("v2", none), 0, () => 0);
    for (let i = 0; i < 5; i++) await unweighted.check({ service: "" });
    expect(none).toEqual(["v1", "v1", "v1", "v1", "v1"]);
    unweighted.close();
    expect(none.slice(5)).toEqual(["v1 closed", "v2 closed"]);
  });

  it("puts streaming methods on their own channel", async () => {
    const reached: string[] = [];
    const record = (name: string) =>
      ({
        check: async () => void reached.push(`${name} check`),
        watch: () => {
          reached.push(`${name} watch`);
          return (async function* () {})();
        },
        close: () => {},
        waitForReady: async () => {},
        grpcClient: undefined,
      }) as unknown as Client<typeof Health>;
    expect(hasStreams(Health)).toBe(true);
    const client = streamsApart(Health, record("unary"), record("streams"));
    await client.check({ service: "" });
    for await (const _ of client.watch({ service: "" })) break;
    expect(reached).toEqual(["unary check", "streams watch"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Two Delivery processes behind the gateway

const root = join(import.meta.dirname, "..", "..");
const SECRET = "canary-test-secret-canary-test-s";
const TLS_ENV = { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: TEST_PKI_DIR, ...hermeticEnv() };
const READS = 6;

interface Version {
  readonly version: string;
  readonly child: ChildProcess;
  readonly address: string;
  readonly metricsUrl: string;
}

let nats: TestNatsServer;
let gateway: RunningGateway;
let token: string;
const versions: Version[] = [];
const deliveryId = "canary-test-delivery";

async function startDelivery(version: string): Promise<Version> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  // Compiled when the build is current (make vitest builds first), else through tsx.
  const child = spawn(process.execPath, nodeArgsFor("services/delivery/main.ts"), {
    cwd: root,
    env: {
      ...process.env,
      ...TLS_ENV,
      NATS_URL: nats.url,
      DELIVERY_PORT: String(port),
      DELIVERY_METRICS_PORT: String(metricsPort),
      SERVICE_VERSION: version,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const address = `127.0.0.1:${port}`;
  const started: Version = { version, child, address, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
  versions.push(started);
  const health = await waitForHealth(address, { timeoutMs: 60_000, intervalMs: 200, env: TLS_ENV });
  if (!health.ok) throw new Error(`delivery ${version} at ${address}: ${health.last}`);
  return started;
}

/** GetDelivery calls a Delivery process has served, by the version label it reports them under. */
async function servedReads(instance: Version): Promise<Record<string, number>> {
  const text = await (await fetch(instance.metricsUrl)).text();
  const byVersion: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("rpc_server_handled_total{") || !line.includes('grpc_method="GetDelivery"')) continue;
    const version = /version="([^"]*)"/.exec(line)?.[1] ?? "(none)";
    byVersion[version] = (byVersion[version] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return byVersion;
}

async function readThroughGateway(canary: string | undefined): Promise<void> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (canary !== undefined) headers["x-canary"] = canary;
  const res = await fetch(`${gateway.url}/v1/deliveries/${deliveryId}`, { headers });
  expect(res.status, await res.clone().text()).toBe(200);
  expect(((await res.json()) as { id?: string; deliveryId?: string }).id ?? deliveryId).toBe(deliveryId);
}

beforeAll(async () => {
  nats = await startNatsServer();
  await ensureDevPki(TEST_PKI_DIR, PKI_IDENTITIES);
  const [v1, v2] = [await startDelivery("1.0.0"), await startDelivery("2.0.0")];

  // A delivery in the shared store, scheduled as the scheduler does (the one caller allowed to).
  const scheduler = await createCommsLayer({ identity: "scheduler", env: { ...TLS_ENV, DELIVERY_ADDRESS: v1.address } });
  try {
    await scheduler.client(DeliveryService, "delivery").scheduleDelivery({
      deliveryId,
      ownerId: "acct-demo",
      pickup: { latitude: 47.6062, longitude: -122.3321, altitude: 0 },
      dropoff: { latitude: 47.6205, longitude: -122.3493, altitude: 0 },
      deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
      confirmationRequired: ConfirmationType.NONE,
      packages: [{ packageId: `${deliveryId}-pkg`, size: PackageSize.SMALL, weightKg: 1.5 }],
      carrier: { case: "droneId", value: "drone-1" },
    });
  } finally {
    scheduler.close();
  }

  gateway = await startGateway({
    env: {
      ...TLS_ENV,
      NATS_URL: nats.url,
      DELIVERY_ADDRESS: v1.address,
      DELIVERY_CANARY_ADDRESS: v2.address,
      GATEWAY_JWT_SECRET: SECRET,
      GATEWAY_PORT: "0",
      GATEWAY_GRPC_PORT: "0",
      GATEWAY_ADMIN_PORT: "0",
      GATEWAY_RATE_LIMIT_REQUESTS: "0",
    },
  });
  token = await mintToken("acct-demo", SECRET);
}, 150_000);

afterAll(async () => {
  await gateway?.close();
  for (const { child } of versions) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await nats?.stop();
});

describe("two Delivery versions behind the gateway", () => {
  it("serves reads flagged x-canary: 1 from version 2 and the others from version 1", async () => {
    const [v1, v2] = versions as [Version, Version];
    const before = [await servedReads(v1), await servedReads(v2)];

    for (let i = 0; i < READS; i++) await readThroughGateway(undefined);
    const afterPlain = [await servedReads(v1), await servedReads(v2)];
    const perRead = ((afterPlain[0]!["1.0.0"] ?? 0) - (before[0]!["1.0.0"] ?? 0)) / READS;
    expect(perRead).toBeGreaterThanOrEqual(1); // every read reached version 1 ...
    expect(afterPlain[1]).toEqual(before[1]); // ... and none version 2

    for (let i = 0; i < READS; i++) await readThroughGateway("1");
    const afterCanary = [await servedReads(v1), await servedReads(v2)];
    expect(afterCanary[0]).toEqual(afterPlain[0]);
    expect((afterCanary[1]!["2.0.0"] ?? 0) - (afterPlain[1]!["2.0.0"] ?? 0)).toBe(perRead * READS);

    for (let i = 0; i < READS; i++) await readThroughGateway("0");
    const afterOptOut = [await servedReads(v1), await servedReads(v2)];
    expect((afterOptOut[0]!["1.0.0"] ?? 0) - (afterCanary[0]!["1.0.0"] ?? 0)).toBe(perRead * READS);
    expect(afterOptOut[1]).toEqual(afterCanary[1]);

    // Each process reports only its own version.
    expect(Object.keys(afterOptOut[0]!)).toEqual(["1.0.0"]);
    expect(Object.keys(afterOptOut[1]!)).toEqual(["2.0.0"]);
  }, 60_000);

  it("counts the gateway's calls to the canary under target delivery-canary", async () => {
    const text = await (await fetch(gateway.metricsUrl)).text();
    const calls = (target: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith("rpc_client_handled_total{") && l.includes(`target="${target}"`) && l.includes('grpc_method="GetDelivery"'))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    expect(calls("delivery-canary")).toBeGreaterThanOrEqual(READS);
    expect(calls("delivery")).toBeGreaterThanOrEqual(2 * READS);
  });
});
