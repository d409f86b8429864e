/**
 * Gateway benchmark (`make bench`): reading one delivery through the gateway's REST surface
 * (`GET /v1/deliveries/{id}`, JSON over HTTP/1.1) next to the same read called directly on the
 * Delivery service over gRPC (`DeliveryService.GetDelivery`), in the same run, against the same
 * deliveries.
 *
 * The REST read does more than forward: it passes the edge checks (CORS, body size, rate limit),
 * verifies the bearer token, reads the delivery (GetDelivery) and checks from it that the caller
 * owns it, and maps the internal delivery onto the public JSON. The direct read is the same
 * internal call, binary protobuf.
 *
 * Everything runs on loopback in this process: a private nats-server (a child process), every
 * service, the gateway and the load generator. The HTTP client is node:http with a keep-alive
 * Agent (one socket per concurrent request); the gRPC client is the platform's createClient (one
 * HTTP/2 connection). Each path gets a warm-up; then the measured requests (a fixed count per
 * path, with a time cap per path) run in rounds in which the two paths take turns, so that both
 * meet the same background work on the machine. Exits non-zero only when a path had errors.
 *
 *   BENCH_GATEWAY_REQUESTS=5000  requests per path        BENCH_GATEWAY_CONCURRENCY=16  in flight
 *   BENCH_GATEWAY_WARMUP=500     warm-up requests         BENCH_GATEWAY_MAX_S=60        cap per path
 *   BENCH_GATEWAY_DELIVERIES=4   deliveries read in turn  BENCH_GATEWAY_ROUNDS=5        rounds
 *
 * Then the accept path, `POST /v1/deliveryrequests`, with and without a caller-chosen
 * `Idempotency-Key`: with one, the gateway first claims the key for the request's fingerprint in
 * its KV bucket `gateway-idempotency` (one KV create), so the difference is that check's cost.
 * The Scheduler is stopped meanwhile, so the workflows of the accepted requests do not compete
 * with the accept path for the machine (they stay queued, which is what accepting means).
 *
 *   BENCH_GATEWAY_ACCEPTS=1000   accepted requests per path
 *
 * The internal hops are plaintext by default (as in the tests). `BENCH_GATEWAY_TLS=on` runs them
 * over mutual TLS with a temporary development PKI, as deployed: every internal call then carries
 * the caller check of the authorization table, and the direct gRPC client is the `gateway`
 * identity's communication layer.
 */
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { startGateway, type RunningGateway } from "../gateway/module.js";
import { mintToken } from "../gateway/tokens.js";
import { createCommsLayer, type CommsLayer } from "../lib/comms/index.js";
import { createClient, type Client } from "../lib/grpc/index.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { startPlatform, type TestPlatform } from "../test/harness/platform.js";
import { emptyResult, reportErrors, run, type PathResult } from "./load.js";
import { percentile, printTable } from "./report.js";

const REQUESTS = Number(process.env["BENCH_GATEWAY_REQUESTS"] ?? 5000);
const CONCURRENCY = Number(process.env["BENCH_GATEWAY_CONCURRENCY"] ?? 16);
const WARMUP = Number(process.env["BENCH_GATEWAY_WARMUP"] ?? 500);
const MAX_S = Number(process.env["BENCH_GATEWAY_MAX_S"] ?? 60);
const DELIVERIES = Number(process.env["BENCH_GATEWAY_DELIVERIES"] ?? 4);
const ROUNDS = Math.max(1, Number(process.env["BENCH_GATEWAY_ROUNDS"] ?? 5));
const ACCEPTS = Number(process.env["BENCH_GATEWAY_ACCEPTS"] ?? 1000);
const TLS = ["on", "true", "1"].includes((process.env["BENCH_GATEWAY_TLS"] ?? "off").toLowerCase());
const SECRET = "bench-gateway-secret";
// One of the accounts the Account service knows from the start.
const ACCOUNT = "acct-demo";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BenchPath {
  readonly name: string;
  readonly read: (i: number) => Promise<void>;
  readonly result: PathResult;
}

/**
 * Warms each path up, then runs `total` requests per path in rounds in which the paths take turns
 * (and turns at going first), so that all meet the same background work of the machine.
 */
async function measure(paths: readonly BenchPath[], total: number, warmup: number): Promise<void> {
  for (const { read } of paths) await run(read, warmup, CONCURRENCY, MAX_S * 1000, emptyResult());
  for (let round = 0; round < ROUNDS; round++) {
    const count = Math.floor(total / ROUNDS) + (round < total % ROUNDS ? 1 : 0);
    for (const { read, result } of round % 2 === 0 ? paths : [...paths].reverse()) {
      await run(read, count, CONCURRENCY, MAX_S * 1000 - result.elapsedMs, result);
    }
  }
}

function figuresOf(paths: readonly BenchPath[], total: number) {
  return paths.map(({ name, result }) => ({
    name,
    result,
    capped: result.requests < total,
    rate: result.latenciesMs.length / (result.elapsedMs / 1000),
    p50: percentile(result.latenciesMs, 50),
    p99: percentile(result.latenciesMs, 99),
  }));
}

type Figure = ReturnType<typeof figuresOf>[number];

const columns = (cells: string[]) => cells.map((c, k) => (k === 0 ? c.padStart(9) : c.padStart(10))).join("");

function rows(figures: readonly Figure[]): [string, string][] {
  return [
    ["path", columns(["requests", "req/s", "p50 ms", "p99 ms", "errors"])],
    ...figures.map(({ name, result, capped, rate, p50, p99 }): [string, string] => [
      name,
      columns([`${result.requests}${capped ? "*" : ""}`, rate.toFixed(0), p50.toFixed(2), p99.toFixed(2), String(result.errors)]),
    ]),
  ];
}

const ratio = (a: Figure, b: Figure) => `req/s ${(a.rate / b.rate).toFixed(2)}x, p50 ${(a.p50 / b.p50).toFixed(2)}x, p99 ${(a.p99 / b.p99).toFixed(2)}x`;

interface HttpAnswer {
  status: number;
  body: string;
}

/** One request over `agent`, the whole body read as text. */
function httpRequest(agent: http.Agent, url: URL, options: { method: string; headers: Record<string, string>; body?: string }): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method: options.method, headers: options.headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

async function main(): Promise<number> {
  const nats = await startNatsServer({ readyTimeoutMs: 10_000 });
  let platform: TestPlatform | undefined;
  let gateway: RunningGateway | undefined;
  let direct: Client<typeof DeliveryService> | undefined;
  let layer: CommsLayer | undefined;
  const pki = TLS ? await mkdtemp(path.join(tmpdir(), "bench-gateway-pki-")) : undefined;
  const tlsEnv = pki ? { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: pki } : {};
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    platform = await startPlatform(nats.url, { env: { DRONE_FLEET_SIZE: String(Math.max(6, DELIVERIES + 2)), ...tlsEnv } });
    gateway = await startGateway({
      env: {
        ...platform.env,
        GATEWAY_JWT_SECRET: SECRET,
        GATEWAY_PORT: "0",
        GATEWAY_GRPC_PORT: "0",
        // The rate limiter stays on (its bookkeeping is part of every request) with an allowance
        // this run cannot reach.
        GATEWAY_RATE_LIMIT_REQUESTS: "1000000000",
      },
    });
    if (TLS) {
      layer = await createCommsLayer({ identity: "gateway", env: platform.env });
      direct = layer.client(DeliveryService, "delivery");
    } else {
      direct = createClient(DeliveryService, { address: platform.address("delivery"), defaultTimeoutMs: 10_000 });
    }
    const client = direct;
    const token = await mintToken(ACCOUNT, SECRET);
    const auth = { authorization: `Bearer ${token}` };
    const base = gateway.url;

    // A few deliveries through the public API; the scheduler's workflow creates them.
    const ids: string[] = [];
    for (let i = 0; i < DELIVERIES; i++) {
      const answer = await httpRequest(agent, new URL("/v1/deliveryrequests", base), {
        method: "POST",
        headers: { ...auth, "content-type": "application/json", "idempotency-key": `bench-gateway-${i}` },
        body: JSON.stringify({
          pickup: { latitude: 47.61, longitude: -122.33 },
          dropoff: { latitude: 47.63, longitude: -122.36 },
          deadline: new Date(Date.now() + 86_400_000).toISOString(),
          confirmationRequired: "CONFIRMATION_TYPE_NONE",
          packageInfo: { packageId: `pkg-bench-gateway-${i}`, size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
        }),
      });
      if (answer.status !== 202) throw new Error(`POST /v1/deliveryrequests answered ${answer.status}: ${answer.body}`);
      ids.push((JSON.parse(answer.body) as { deliveryId: string }).deliveryId);
    }
    const until = Date.now() + 30_000;
    for (const id of ids) {
      for (;;) {
        const answer = await httpRequest(agent, new URL(`/v1/deliveries/${id}`, base), { method: "GET", headers: auth });
        if (answer.status === 200) break;
        if (Date.now() > until) throw new Error(`GET /v1/deliveries/${id} still answers ${answer.status}: ${answer.body}`);
        await sleep(100);
      }
    }

    const urls = ids.map((id) => new URL(`/v1/deliveries/${id}`, base));
    const viaGateway = async (i: number) => {
      const answer = await httpRequest(agent, urls[i % urls.length]!, { method: "GET", headers: auth });
      if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
      const delivery = JSON.parse(answer.body) as { deliveryId?: string };
      if (delivery.deliveryId !== ids[i % ids.length]) throw new Error(`answered delivery ${delivery.deliveryId}`);
    };
    const viaGrpc = async (i: number) => {
      const answer = await client.getDelivery({ deliveryId: ids[i % ids.length]! });
      if (answer.delivery?.deliveryId !== ids[i % ids.length]) throw new Error(`answered delivery ${answer.delivery?.deliveryId}`);
    };

    console.log(
      `gateway benchmark: ${REQUESTS} reads per path at concurrency ${CONCURRENCY} (after ${WARMUP} warm-up), ` +
        `${ids.length} deliveries, ${ROUNDS} alternating rounds, cap ${MAX_S} s per path, internal hops ${TLS ? "mutual TLS" : "plaintext"}`,
    );
    const paths: BenchPath[] = [
      { name: "REST via gateway", read: viaGateway, result: emptyResult() },
      { name: "gRPC direct", read: viaGrpc, result: emptyResult() },
    ];
    await measure(paths, REQUESTS, WARMUP);
    const figures = figuresOf(paths, REQUESTS);
    const [gw, grpc] = figures as [Figure, Figure];
    printTable("GET /v1/deliveries/{id} via the gateway vs DeliveryService.GetDelivery direct", [
      ...rows(figures),
      ["gateway / direct", ratio(gw, grpc)],
      ["REST read does", "edge checks + JWT check + span + GetDelivery (owner checked) + public JSON"],
    ]);
    if (figures.some((f) => f.capped)) console.log(`  * stopped by the ${MAX_S} s cap before ${REQUESTS} requests`);

    // The accept path, with and without a caller-chosen key.
    await platform.stopService("scheduler");
    const runId = Date.now().toString(36);
    const accept = (withKey: boolean) => async (i: number) => {
      const tag = `${runId}-${withKey ? "k" : "n"}-${i}`;
      const answer = await httpRequest(agent, new URL("/v1/deliveryrequests", base), {
        method: "POST",
        headers: { ...auth, "content-type": "application/json", ...(withKey ? { "idempotency-key": `bench-${tag}` } : {}) },
        body: JSON.stringify({
          pickup: { latitude: 47.61, longitude: -122.33 },
          dropoff: { latitude: 47.63, longitude: -122.36 },
          deadline: new Date(Date.now() + 86_400_000).toISOString(),
          confirmationRequired: "CONFIRMATION_TYPE_NONE",
          packageInfo: { packageId: `pkg-${tag}`, size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
        }),
      });
      if (answer.status !== 202) throw new Error(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
    };
    const accepts: BenchPath[] = [
      { name: "with key", read: accept(true), result: emptyResult() },
      { name: "without key", read: accept(false), result: emptyResult() },
    ];
    console.log(`accept benchmark: ${ACCEPTS} accepted requests per path at concurrency ${CONCURRENCY}`);
    await measure(accepts, ACCEPTS, Math.min(WARMUP, 100));
    const acceptFigures = figuresOf(accepts, ACCEPTS);
    const [keyed, unkeyed] = acceptFigures as [Figure, Figure];
    printTable("POST /v1/deliveryrequests (202, after the JetStream ack) with and without an Idempotency-Key", [
      ...rows(acceptFigures),
      ["key / no key", ratio(keyed, unkeyed)],
      ["the key adds", "a KV create of the request's fingerprint per account and key (gateway-idempotency)"],
    ]);
    if (acceptFigures.some((f) => f.capped)) console.log(`  * stopped by the ${MAX_S} s cap before ${ACCEPTS} requests`);
    figures.push(...acceptFigures);
    return reportErrors(figures);
  } finally {
    if (layer) layer.close();
    else direct?.close();
    agent.destroy();
    await gateway?.close();
    await platform?.stop();
    await nats.stop();
    if (pki) await rm(pki, { recursive: true, force: true });
  }
}

process.exitCode = await main();
