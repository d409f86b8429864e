/**
 * HTTP benchmark (`make bench`): the public API's two hot paths measured from outside with h2load,
 * each beside its baseline in the same run, and the memory of the platform's processes.
 *
 * The platform runs as `make run` runs it: a private nats-server with one user per service (NATS
 * authorization on), every service and the gateway as separate processes started through
 * nodeArgsFor, mutual TLS between them from a temporary development PKI, on free loopback ports.
 * Then, with the paths taking turns in every round (BENCH_HTTP_ROUNDS, the order rotating):
 *
 * - read: `GET /v1/deliveries/{id}` through the gateway (HTTP/1.1 with a bearer token: edge checks,
 *   token check, GetDelivery over mutual TLS with the caller checked, owner check, public JSON), vs
 *   `DeliveryService.GetDelivery` straight on a Delivery instance (h2load as a gRPC client over
 *   HTTP/2 with a pre-encoded request), vs a bare `node:http` server answering a static JSON body
 *   of the same size (a process of its own). h2load cannot present a client certificate, so the
 *   direct baseline is one extra Delivery instance with INTERNAL_TLS=off on the same nats-server
 *   (same store, same code, no TLS and no caller check);
 * - accept: `POST /v1/deliveryrequests` through the gateway (HTTP/1.1, 32 connections: token check,
 *   validation, ScheduleDelivery over mutual TLS, JetStream publish with ack; 202 only once the
 *   request is stored) vs a raw JetStream publish with ack of a message of the same size (an
 *   encoded ScheduleDeliveryCommand, with a message id and the expected stream as Ingestion
 *   publishes it) to the same stream on the same nats-server, 32 in flight, from a small Node.js
 *   process of its own using the `nats` package. The Scheduler is stopped first, so the workflows
 *   of the accepted requests do not compete with the accept path (they stay queued);
 * - memory: the resident set (VmRSS) of every platform process once started and idle, and its
 *   highest value sampled during the accept rounds (nats-server's shown for reference).
 *
 * Rates are h2load's req/s of the measured phase (after a warm-up), averaged over the rounds;
 * percentiles come from h2load's per-request log of every round. Records its figures with
 * recordFigures("http", ...) and prints its own tables. Exits non-zero when a path had request
 * errors (an answer other than 2xx, or no answer).
 *
 * Environment (defaults):
 *   BENCH_HTTP_ROUNDS=3          rounds; every path runs once per round
 *   BENCH_HTTP_SECONDS=4         measured seconds per path per round (after the warm-up)
 *   BENCH_HTTP_WARMUP_S=1        warm-up seconds before each measured run
 *   BENCH_HTTP_ACCEPT_CONNS=32   connections (and raw publishes in flight) of the accept paths
 *   BENCH_HTTP_READ_CONNS=16     connections of the read paths
 *   BENCH_CPU_PROF_DIR           when set, the platform processes run with --cpu-prof and write
 *                                their profiles to <dir>/<process>/ when they stop
 *   BENCH_CPU_PROF=gateway,...   only these processes (default: all of them; the direct read's
 *                                Delivery instance is `delivery-plaintext`)
 *   BENCH_HTTP_LOG_DIR           keep every process's output in <dir>/<process>.log (default: a
 *                                temporary directory, removed)
 *   H2LOAD_BIN                   the h2load binary (default: h2load on PATH)
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryService, GetDeliveryRequestSchema } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { ScheduleDeliveryCommandSchema } from "../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { mintToken } from "../gateway/tokens.js";
import { nodeArgsFor, REPO_ROOT } from "../lib/devtools/service-command.js";
import { commandPidOf, startSupervisedChild, type SupervisedChild } from "../lib/devtools/supervised-child.js";
import { connectNatsAs, drainQuietly } from "../lib/nats/connection.js";
import { ensureStreams, STREAMS, subjects } from "../lib/nats/streams.js";
import { ensureDevPki, PKI_IDENTITIES } from "../lib/security/index.js";
import { envPrefix } from "../lib/service/config.js";
import { waitForHealth } from "../lib/service/health-probe.js";
import { DEFAULT_PORTS, type ServiceName } from "../lib/service/ports.js";
import { startNatsServer, type TestNatsServer } from "../test/harness/nats-server.js";
import { grpcFrame, runH2load, type H2loadResult } from "./h2load.js";
import { cpuMsOf, rssBytesOf } from "./proc-stats.js";
import { freePort, percentile, printTable } from "./report.js";
import { formatNumber, formatRatio, recordFigures, type Figure } from "./results.js";

const ROUNDS = Math.max(1, Number(process.env["BENCH_HTTP_ROUNDS"] ?? 3));
const SECONDS = Math.max(1, Number(process.env["BENCH_HTTP_SECONDS"] ?? 4));
const WARMUP_S = Math.max(0, Number(process.env["BENCH_HTTP_WARMUP_S"] ?? 1));
const ACCEPT_CONNS = Math.max(1, Number(process.env["BENCH_HTTP_ACCEPT_CONNS"] ?? 32));
const READ_CONNS = Math.max(1, Number(process.env["BENCH_HTTP_READ_CONNS"] ?? 16));
const PROFILE_DIR = process.env["BENCH_CPU_PROF_DIR"]?.trim() ? path.resolve(process.env["BENCH_CPU_PROF_DIR"].trim()) : undefined;
const PROFILED = new Set(
  (process.env["BENCH_CPU_PROF"] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);

const LOG_DIR = process.env["BENCH_HTTP_LOG_DIR"]?.trim() ? path.resolve(process.env["BENCH_HTTP_LOG_DIR"].trim()) : undefined;

const HOST = "127.0.0.1";
const SECRET = "bench-http-secret";
// One of the accounts the Account service knows from the start.
const ACCOUNT = "acct-demo";
const SELF = fileURLToPath(import.meta.url);
const MB = 1024 * 1024;

/** `--cpu-prof` into <BENCH_CPU_PROF_DIR>/<label>/ when that process is to be profiled. */
function profileOptions(label: string): string[] {
  const profiled = PROFILE_DIR && (PROFILED.size === 0 || PROFILED.has(label));
  return profiled ? ["--cpu-prof", `--cpu-prof-dir=${path.join(PROFILE_DIR, label)}`] : [];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The body of every accepted request (no Idempotency-Key: the gateway gives each request its own). */
function scheduleBody(): string {
  return JSON.stringify({
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff: { latitude: 47.63, longitude: -122.36 },
    deadline: new Date(Date.now() + 86_400_000).toISOString(),
    confirmationRequired: "CONFIRMATION_TYPE_NONE",
    packageInfo: { packageId: "pkg-bench-http", size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
  });
}

// ---------------------------------------------------------------------------------------------
// Helper processes: this file run with `--role <name>`.

/** A bare node:http server answering every request with the same JSON body of `size` bytes. */
function staticJsonServer(port: number, size: number): void {
  const prefix = '{"padding":"';
  const body = Buffer.from(prefix + "x".repeat(Math.max(0, size - prefix.length - 2)) + '"}');
  http
    .createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    })
    .listen(port, HOST, () => console.log(`static JSON (${body.length} bytes) on ${HOST}:${port}`));
}

/**
 * Raw JetStream publishes with ack as Ingestion makes them (an encoded ScheduleDeliveryCommand, a
 * message id, the expected stream) with `inFlight` outstanding, `warmupS` then `seconds` measured.
 * Prints one line: RESULT {count, seconds, rate, p50, p99, errors, messageBytes}.
 */
async function jetstreamPublisher(inFlight: number, seconds: number, warmupS: number): Promise<void> {
  const nc = await connectNatsAs("ingestion", process.env, { name: "bench-raw-publisher" });
  const js = nc.jetstream();
  const body = JSON.parse(scheduleBody()) as { deadline: string };
  const command = (deliveryId: string) =>
    create(ScheduleDeliveryCommandSchema, {
      deliveryId,
      ownerId: ACCOUNT,
      pickup: { latitude: 47.61, longitude: -122.33 },
      dropoff: { latitude: 47.63, longitude: -122.36 },
      deadline: timestampFromDate(new Date(body.deadline)),
      confirmationRequired: ConfirmationType.NONE,
      packages: [{ packageId: "pkg-bench-http", size: PackageSize.SMALL, weightKg: 1.2 }],
      idempotencyKey: randomUUID(),
      acceptTime: timestampNow(),
    });
  const run = randomUUID().slice(0, 8);
  let n = 0;
  let errors = 0;
  let lastError = "";
  const latencies: number[] = [];
  const start = Date.now();
  const cpuAtStart = process.cpuUsage();
  const measureFrom = start + warmupS * 1000;
  const end = measureFrom + seconds * 1000;
  let measuredCount = 0;
  const worker = async () => {
    for (;;) {
      const begun = performance.now();
      const now = Date.now();
      if (now >= end) return;
      // A 24-hex-digit id, as Ingestion derives them.
      const deliveryId = `dlv-${run}${(n++).toString(16).padStart(16, "0")}`;
      try {
        await js.publish(subjects.scheduleRequest(deliveryId), toBinary(ScheduleDeliveryCommandSchema, command(deliveryId)), {
          msgID: `schedule:${deliveryId}`,
          expect: { streamName: STREAMS.DELIVERY_REQUESTS.name },
        });
        const done = Date.now();
        if (now >= measureFrom && done <= end) {
          measuredCount++;
          latencies.push(performance.now() - begun);
        }
      } catch (error) {
        errors++;
        lastError = (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const cpu = process.cpuUsage(cpuAtStart);
  const published = n - errors;
  const messageBytes = toBinary(ScheduleDeliveryCommandSchema, command(`dlv-${run}${"0".repeat(16)}`)).length;
  await drainQuietly(nc);
  const result = {
    count: measuredCount,
    seconds,
    rate: measuredCount / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    lastError,
    messageBytes,
    // The publisher's own CPU per publish (warm-up included on both sides).
    cpuUsPerMessage: published > 0 ? (cpu.user + cpu.system) / published : 0,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

type PublisherResult = {
  count: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  errors: number;
  lastError: string;
  messageBytes: number;
  cpuUsPerMessage: number;
};

/** Node.js arguments that run this file again as a helper process. */
function selfArgs(role: string, args: readonly (string | number)[]): string[] {
  const inherited = process.execArgv.filter((a) => !/^--(cpu|heap)-prof/.test(a));
  return [...inherited, SELF, "--role", role, ...args.map(String)];
}

/** Runs the raw publisher as its own process and reads its result line. */
function runPublisher(env: NodeJS.ProcessEnv): Promise<PublisherResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, selfArgs("jetstream-publisher", [ACCEPT_CONNS, SECONDS, WARMUP_S]), {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), (SECONDS + WARMUP_S + 60) * 1000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = /^RESULT (.*)$/m.exec(out);
      if (code === 0 && line) resolve(JSON.parse(line[1]!) as PublisherResult);
      else reject(new Error(`raw publisher ended with ${signal ?? `status ${code}`}:\n${out.slice(-2000)}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The platform, as `make run` starts it.

interface PlatformProcess {
  readonly label: string;
  readonly child: SupervisedChild;
  /** host:port of its gRPC server or (gateway) its HTTP server. */
  readonly address: string;
}

async function waitForHttp(url: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<Response> {
  const until = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
      if (response.ok) return response;
      last = `HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() >= until) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms: ${last}`);
    await sleep(200);
  }
}

/** One gRPC GetDelivery over plaintext HTTP/2 with the given framed body: HTTP status and grpc-status. */
function grpcProbe(address: string, body: Uint8Array): Promise<{ status: number; grpcStatus: string | undefined; bytes: number }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": `/${DeliveryService.typeName}/GetDelivery`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    let status = 0;
    let grpcStatus: string | undefined;
    let bytes = 0;
    req.on("response", (headers) => {
      status = Number(headers[":status"]);
      if (headers["grpc-status"] !== undefined) grpcStatus = String(headers["grpc-status"]);
    });
    req.on("trailers", (trailers) => (grpcStatus = String(trailers["grpc-status"])));
    req.on("data", (chunk: Buffer) => (bytes += chunk.length));
    req.on("end", () => {
      session.close();
      resolve({ status, grpcStatus, bytes });
    });
    req.on("error", reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface PathRuns {
  readonly name: string;
  readonly runs: H2loadResult[];
}

function errorsOf(result: H2loadResult): number {
  const { requests } = result.summary;
  return requests.failed + requests.errored + requests.timeout;
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

function rateOf(path: PathRuns): number {
  return mean(path.runs.map((r) => r.summary.reqPerS));
}

/** Percentiles over every round's log together (of the union, not a mean of percentiles). */
function latencyOfRuns(path: PathRuns): { p50: number; p99: number } {
  const ms = path.runs.flatMap((r) => r.latenciesMs ?? []);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

function pathRow(p: PathRuns): [string, string] {
  const rates = p.runs.map((r) => formatNumber(r.summary.reqPerS)).join(" / ");
  const lat = latencyOfRuns(p);
  const errors = p.runs.reduce((n, r) => n + errorsOf(r), 0);
  const latency = Number.isNaN(lat.p99) ? "" : `, p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms`;
  return [p.name, `${formatNumber(rateOf(p))} req/s (rounds ${rates})${latency}, errors ${errors}`];
}

const rounded = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** CPU time each process used during a path's rounds, and the requests those rounds answered. */
interface CpuShare {
  readonly cpuMs: Map<string, number>;
  wallMs: number;
  requests: number;
}

/** Runs `run` and adds the CPU time of every process in `pids` (by label) and its answers to `share`. */
async function withCpuShare<T extends H2loadResult>(share: CpuShare, pids: () => Map<string, number | undefined>, run: () => Promise<T>): Promise<T> {
  const before = new Map([...pids()].map(([label, pid]) => [label, cpuMsOf(pid)]));
  const began = Date.now();
  const result = await run();
  share.wallMs += Date.now() - began;
  // The CPU time covers h2load's warm-up too, which its counts leave out: requests at the measured rate.
  share.requests += (result.summary.reqPerS * (Date.now() - began)) / 1000;
  for (const [label, pid] of pids()) {
    const start = before.get(label);
    const end = cpuMsOf(pid);
    if (start !== undefined && end !== undefined) share.cpuMs.set(label, (share.cpuMs.get(label) ?? 0) + end - start);
  }
  return result;
}

/** One row per process: its share of a core during the rounds and its CPU time per answered request. */
function cpuRows(share: CpuShare): [string, string][] {
  const rows = [...share.cpuMs.entries()].filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((n, [, ms]) => n + ms, 0);
  const per = (ms: number) => (share.requests > 0 ? `${((ms * 1000) / share.requests).toFixed(0)} µs/request` : "-");
  return [
    ...rows.map(([label, ms]): [string, string] => [label, `${((100 * ms) / Math.max(1, share.wallMs)).toFixed(0)} % of a core, ${per(ms)}`]),
    ["all of them", `${((100 * total) / Math.max(1, share.wallMs)).toFixed(0)} % of a core, ${per(total)} (about ${formatNumber(share.requests)} requests)`],
  ];
}

/** CPU µs per request by process, for results.json. */
function cpuValues(share: CpuShare): Record<string, number> {
  if (share.requests <= 0) return {};
  return Object.fromEntries([...share.cpuMs.entries()].map(([label, ms]) => [`cpuUsPerRequest_${label}`, Math.round((ms * 1000) / share.requests)]));
}

async function main(): Promise<number> {
  const work = await mkdtemp(path.join(tmpdir(), "bench-http-"));
  const logDir = LOG_DIR ?? path.join(work, "logs");
  mkdirSync(logDir, { recursive: true });
  let nats: TestNatsServer | undefined;
  const processes: PlatformProcess[] = [];
  const helpers: SupervisedChild[] = [];
  let errors = 0;

  const cleanUp = async () => {
    await Promise.all([...helpers, ...processes.map((p) => p.child)].map((c) => c.stop({ timeoutMs: 10_000 })));
    await nats?.stop();
    await rm(work, { recursive: true, force: true });
  };
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.error(`http benchmark: ${signal}, stopping what it started`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const began = Date.now();
    nats = await startNatsServer({ auth: true, readyTimeoutMs: 20_000 });
    const admin = await nats.connectAs("admin");
    await ensureStreams(await admin.jetstreamManager());
    await drainQuietly(admin);
    const pkiDir = path.join(work, "pki");
    await ensureDevPki(pkiDir, PKI_IDENTITIES);

    // Every service and the gateway, each on free ports, as `make run` starts them.
    const names = Object.keys(DEFAULT_PORTS) as ServiceName[];
    const ports = new Map<string, number>();
    for (const name of names) ports.set(name, await freePort());
    const addresses = Object.fromEntries(names.map((name) => [`${envPrefix(name)}ADDRESS`, `${HOST}:${ports.get(name)}`]));
    const baseEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...nats.serviceEnv,
      INTERNAL_TLS: "on",
      INTERNAL_PKI_DIR: pkiDir,
      ...addresses,
    };
    const start = async (label: string, entry: string, env: NodeJS.ProcessEnv, address: string): Promise<PlatformProcess> => {
      const child = startSupervisedChild({
        name: label,
        command: process.execPath,
        args: nodeArgsFor(entry, profileOptions(label)),
        cwd: REPO_ROOT,
        env,
        logFile: path.join(logDir, `${label}.log`),
        onParentExit: "SIGKILL",
        orphanStopTimeoutMs: 5_000,
      });
      const p = { label, child, address };
      processes.push(p);
      return p;
    };
    for (const name of names) {
      const port = ports.get(name)!;
      await start(name, `services/${name}/main.ts`, {
        ...baseEnv,
        SERVICE_NAME: name,
        [`${envPrefix(name)}PORT`]: String(port),
        [`${envPrefix(name)}METRICS_PORT`]: String(await freePort()),
      }, `${HOST}:${port}`);
    }
    const gatewayPort = await freePort();
    const gateway = await start("gateway", "gateway/main.ts", {
      ...baseEnv,
      SERVICE_NAME: "gateway",
      GATEWAY_PORT: String(gatewayPort),
      GATEWAY_GRPC_PORT: String(await freePort()),
      GATEWAY_ADMIN_PORT: String(await freePort()),
      GATEWAY_JWT_SECRET: SECRET,
      // The rate limiter stays on (its bookkeeping is part of every request) with an allowance
      // this run cannot reach.
      GATEWAY_RATE_LIMIT_REQUESTS: "1000000000",
    }, `${HOST}:${gatewayPort}`);
    const base = `http://${gateway.address}`;

    const ready = await Promise.all(
      processes.map(async (p) => {
        if (p === gateway) {
          const ok = await waitForHttp(`${base}/healthz`, 90_000).then(() => true, () => false);
          return { p, ok, last: ok ? "SERVING" : "no 200 from /healthz" };
        }
        return { p, ...(await waitForHealth(p.address, { timeoutMs: 90_000, intervalMs: 250, env: baseEnv })) };
      }),
    );
    const notReady = ready.filter((r) => !r.ok);
    if (notReady.length > 0) {
      for (const { p, last } of notReady) console.error(`${p.label} is not SERVING (${last}); its last lines:\n${p.child.logTail(20)}`);
      throw new Error(`not ready: ${notReady.map((r) => r.p.label).join(", ")}`);
    }
    const startedS = (Date.now() - began) / 1000;
    console.log(`http benchmark: nats-server, ${processes.length - 1} services and the gateway up in ${startedS.toFixed(1)} s (mutual TLS, NATS authorization)`);

    // Memory once idle: after a moment for start-up work to settle.
    await sleep(3_000);
    const pidOf = (p: PlatformProcess) => commandPidOf(p.child);
    const idleRss = new Map<string, number>();
    for (const p of processes) {
      const rss = rssBytesOf(pidOf(p));
      if (rss !== undefined) idleRss.set(p.label, rss);
    }
    const natsIdleRss = rssBytesOf(nats.pid);

    // One delivery to read: accepted through the gateway, created by the Scheduler's workflow.
    const token = await mintToken(ACCOUNT, SECRET, 3600);
    const auth = `Bearer ${token}`;
    const created = await fetch(`${base}/v1/deliveryrequests`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/json", "idempotency-key": "bench-http-read" },
      body: scheduleBody(),
    });
    const createdText = await created.text();
    if (created.status !== 202) throw new Error(`POST /v1/deliveryrequests answered ${created.status}: ${createdText}`);
    const deliveryId = (JSON.parse(createdText) as { deliveryId: string }).deliveryId;
    const readUrl = `${base}/v1/deliveries/${deliveryId}`;
    const answer = await waitForHttp(readUrl, 60_000, { authorization: auth });
    const readBytes = Buffer.byteLength(await answer.text());

    // The baselines of the read: a bare node:http server, and a Delivery instance without TLS.
    const barePort = await freePort();
    const bare = startSupervisedChild({
      name: "static-json",
      command: process.execPath,
      args: selfArgs("static-json", [barePort, readBytes]),
      cwd: REPO_ROOT,
      env: process.env,
      logFile: path.join(logDir, "static-json.log"),
      onParentExit: "SIGKILL",
    });
    helpers.push(bare);
    const plainPort = await freePort();
    const plainEnv: NodeJS.ProcessEnv = {
      ...baseEnv,
      INTERNAL_TLS: "off",
      // Its one outgoing call (the reconciliation's GetAssignment) would meet the Drone service's
      // mutual TLS without a certificate: the platform's own Delivery instance reconciles.
      DELIVERY_RECONCILE_INTERVAL_MS: "0",
      SERVICE_NAME: "delivery",
      DELIVERY_PORT: String(plainPort),
      DELIVERY_METRICS_PORT: String(await freePort()),
    };
    const plain = startSupervisedChild({
      name: "delivery-plaintext",
      command: process.execPath,
      args: nodeArgsFor("services/delivery/main.ts", profileOptions("delivery-plaintext")),
      cwd: REPO_ROOT,
      env: plainEnv,
      logFile: path.join(logDir, "delivery-plaintext.log"),
      onParentExit: "SIGKILL",
      orphanStopTimeoutMs: 5_000,
    });
    helpers.push(plain);
    const bareUrl = `http://${HOST}:${barePort}/v1/deliveries/${deliveryId}`;
    await waitForHttp(bareUrl, 60_000);
    const plainReady = await waitForHealth(`${HOST}:${plainPort}`, { timeoutMs: 90_000, intervalMs: 250, env: plainEnv });
    if (!plainReady.ok) throw new Error(`the plaintext Delivery instance is not SERVING (${plainReady.last}):\n${plain.logTail(20)}`);
    const grpcBodyFile = path.join(work, "get-delivery.bin");
    const grpcBody = grpcFrame(toBinary(GetDeliveryRequestSchema, create(GetDeliveryRequestSchema, { deliveryId })));
    await writeFile(grpcBodyFile, grpcBody);
    const probe = await grpcProbe(`${HOST}:${plainPort}`, grpcBody);
    if (probe.status !== 200 || probe.grpcStatus !== "0") {
      throw new Error(`GetDelivery on the plaintext instance answered HTTP ${probe.status}, grpc-status ${probe.grpcStatus}`);
    }

    const logFile = (name: string, round: number) => path.join(work, `${name}-${round}.log`);
    const platformPids = () =>
      new Map<string, number | undefined>([
        ...processes.filter((p) => !p.child.hasExited()).map((p): [string, number | undefined] => [p.label, pidOf(p)]),
        ["nats-server", nats?.pid],
      ]);
    const readCpu: CpuShare = { cpuMs: new Map(), wallMs: 0, requests: 0 };
    const directCpu: CpuShare = { cpuMs: new Map(), wallMs: 0, requests: 0 };
    const acceptCpu: CpuShare = { cpuMs: new Map(), wallMs: 0, requests: 0 };
    const directPids = () => new Map<string, number | undefined>([["delivery-plaintext", commandPidOf(plain)], ["nats-server", nats?.pid]]);
    const read: PathRuns = { name: "GET via gateway (REST, h1)", runs: [] };
    const direct: PathRuns = { name: "GetDelivery direct (gRPC, h2)", runs: [] };
    const bareRead: PathRuns = { name: "bare node:http static JSON", runs: [] };
    const readPaths = [
      {
        path: read,
        run: (round: number) =>
          withCpuShare(readCpu, platformPids, () =>
            runH2load({ url: readUrl, h1: true, connections: READ_CONNS, durationS: SECONDS, warmupS: WARMUP_S, headers: [`authorization: ${auth}`], logFile: logFile("read", round) }),
          ),
      },
      {
        path: direct,
        run: (round: number) =>
          withCpuShare(directCpu, directPids, () => runH2load({
            url: `http://${HOST}:${plainPort}/${DeliveryService.typeName}/GetDelivery`,
            connections: READ_CONNS,
            durationS: SECONDS,
            warmupS: WARMUP_S,
            headers: ["content-type: application/grpc", "te: trailers"],
            bodyFile: grpcBodyFile,
            logFile: logFile("direct", round),
          })),
      },
      {
        path: bareRead,
        run: (round: number) =>
          runH2load({ url: bareUrl, h1: true, connections: READ_CONNS, durationS: SECONDS, warmupS: WARMUP_S, logFile: logFile("bare", round) }),
      },
    ];
    console.log(
      `read: ${ROUNDS} rounds x ${readPaths.length} paths x (${WARMUP_S} s warm-up + ${SECONDS} s), ${READ_CONNS} connections, ` +
        `one delivery (${readBytes} bytes of JSON)`,
    );
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < readPaths.length; k++) {
        const { path: p, run } = readPaths[(k + round) % readPaths.length]!;
        const result = await run(round);
        p.runs.push(result);
        console.log(`  round ${round + 1} ${p.name}: ${formatNumber(result.summary.reqPerS)} req/s, ${result.summary.status["2xx"]} 2xx, errors ${errorsOf(result)}`);
      }
    }
    await Promise.all([bare.stop({ timeoutMs: 5_000 }), plain.stop({ timeoutMs: 10_000 })]);

    // The accept path, with the Scheduler stopped.
    await processes.find((p) => p.label === "scheduler")!.child.stop({ timeoutMs: 10_000 });
    const acceptBodyFile = path.join(work, "schedule.json");
    await writeFile(acceptBodyFile, scheduleBody());
    const accept: PathRuns = { name: "POST via gateway (REST, h1)", runs: [] };
    const raw: PublisherResult[] = [];
    const loadRss = new Map<string, number>();
    let natsLoadRss = 0;
    const sampleRss = () => {
      for (const p of processes) {
        if (p.child.hasExited()) continue;
        const rss = rssBytesOf(pidOf(p));
        if (rss !== undefined) loadRss.set(p.label, Math.max(loadRss.get(p.label) ?? 0, rss));
      }
      natsLoadRss = Math.max(natsLoadRss, rssBytesOf(nats?.pid) ?? 0);
    };
    const acceptRun = async (round: number) => {
      const sampler = setInterval(sampleRss, 500);
      try {
        return await withCpuShare(acceptCpu, platformPids, () => runH2load({
          url: `${base}/v1/deliveryrequests`,
          h1: true,
          connections: ACCEPT_CONNS,
          durationS: SECONDS,
          warmupS: WARMUP_S,
          headers: [`authorization: ${auth}`, "content-type: application/json"],
          bodyFile: acceptBodyFile,
          logFile: logFile("accept", round),
        }));
      } finally {
        clearInterval(sampler);
        sampleRss();
      }
    };
    console.log(
      `accept: ${ROUNDS} rounds x 2 paths x (${WARMUP_S} s warm-up + ${SECONDS} s), ${ACCEPT_CONNS} connections / publishes in flight; Scheduler stopped`,
    );
    const rawNatsCpu = { ms: 0, requests: 0 };
    const publisherEnv: NodeJS.ProcessEnv = { ...process.env, ...nats.serviceEnv };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ["gateway", "raw"] : ["raw", "gateway"];
      for (const which of order) {
        if (which === "gateway") {
          const result = await acceptRun(round);
          accept.runs.push(result);
          console.log(`  round ${round + 1} ${accept.name}: ${formatNumber(result.summary.reqPerS)} req/s, ${result.summary.status["2xx"]} 2xx, errors ${errorsOf(result)}`);
        } else {
          const natsCpuBefore = cpuMsOf(nats.pid);
          const began = Date.now();
          const result = await runPublisher(publisherEnv);
          const natsCpu = (cpuMsOf(nats.pid) ?? 0) - (natsCpuBefore ?? 0);
          rawNatsCpu.ms += natsCpu;
          rawNatsCpu.requests += (result.rate * (Date.now() - began)) / 1000;
          raw.push(result);
          console.log(`  round ${round + 1} raw JetStream publish + ack: ${formatNumber(result.rate)} msg/s, p99 ${result.p99.toFixed(1)} ms, errors ${result.errors}`);
          if (result.errors > 0) console.log(`    last error: ${result.lastError}`);
        }
      }
    }

    // Figures.
    const readRate = rateOf(read);
    const directRate = rateOf(direct);
    const bareRate = rateOf(bareRead);
    const readLatency = latencyOfRuns(read);
    const acceptRate = rateOf(accept);
    const acceptLatency = latencyOfRuns(accept);
    const rawRate = mean(raw.map((r) => r.rate));
    const rawP99 = Math.max(...raw.map((r) => r.p99));
    const messageBytes = raw[0]?.messageBytes ?? 0;
    const pathErrors = [read, direct, bareRead, accept].map((p) => p.runs.reduce((n, r) => n + errorsOf(r), 0));
    const rawErrors = raw.reduce((n, r) => n + r.errors, 0);
    errors = pathErrors.reduce((a, b) => a + b, 0) + rawErrors;

    printTable("GET /v1/deliveries/{id}: gateway vs GetDelivery direct vs bare node:http (h2load)", [
      pathRow(read),
      pathRow(direct),
      pathRow(bareRead),
      ["gateway / direct", formatRatio(readRate / directRate)],
      ["gateway / bare", formatRatio(readRate / bareRate)],
      ["direct baseline", "an extra Delivery instance with INTERNAL_TLS=off (h2load has no client certificate)"],
    ]);
    printTable("POST /v1/deliveryrequests (202 after the JetStream ack) vs raw JetStream publish + ack", [
      pathRow(accept),
      [
        "raw publish + ack",
        `${formatNumber(rawRate)} msg/s (rounds ${raw.map((r) => formatNumber(r.rate)).join(" / ")}), p99 ${rawP99.toFixed(1)} ms, ` +
          `${messageBytes} bytes, errors ${rawErrors}`,
      ],
      ["gateway / raw", formatRatio(acceptRate / rawRate)],
    ]);
    printTable("CPU per process during the GET rounds through the gateway (h2load itself not counted)", cpuRows(readCpu));
    printTable("CPU per process during the direct GetDelivery rounds", cpuRows(directCpu));
    printTable("CPU per process during the POST rounds through the gateway", cpuRows(acceptCpu));
    const rawPublisherUs = mean(raw.map((r) => r.cpuUsPerMessage));
    const rawNatsUs = rawNatsCpu.requests > 0 ? (rawNatsCpu.ms * 1000) / rawNatsCpu.requests : 0;
    printTable("CPU per message during the raw publish rounds", [
      ["publisher (nats.js)", `${rawPublisherUs.toFixed(0)} µs/message`],
      ["nats-server", `${rawNatsUs.toFixed(0)} µs/message (its start-up of the publisher's process included)`],
    ]);
    const mb = (bytes: number | undefined) => (bytes === undefined ? "-" : `${(bytes / MB).toFixed(0)} MB`);
    printTable("RSS per process (VmRSS): idle after start-up / highest during the accept rounds", [
      ...processes.map((p): [string, string] => [p.label, `${mb(idleRss.get(p.label))} / ${p.label === "scheduler" ? "stopped" : mb(loadRss.get(p.label))}`]),
      ["nats-server", `${mb(natsIdleRss)} / ${mb(natsLoadRss)}`],
    ]);

    const largest = (rss: Map<string, number>) => [...rss.entries()].reduce((a, b) => (b[1] > a[1] ? b : a), ["-", 0] as [string, number]);
    const [idleMaxName, idleMax] = largest(idleRss);
    const [loadMaxName, loadMax] = largest(loadRss);
    const perProcess = (rss: Map<string, number>, natsRss: number | undefined) => ({
      ...Object.fromEntries([...rss.entries()].map(([k, v]) => [`${k}MB`, rounded(v / MB, 1)])),
      natsServerMB: rounded((natsRss ?? 0) / MB, 1),
    });
    const readGoalDirect = readRate / directRate;
    const readGoalBare = readRate / bareRate;
    const acceptRatio = acceptRate / rawRate;
    const figures: Figure[] = [
      {
        id: "accept.rest",
        figure: `accepted POST /v1/deliveryrequests via the gateway, ${ACCEPT_CONNS} conns (h2load --h1)`,
        platform: `${formatNumber(acceptRate)} req/s, p99 ${acceptLatency.p99.toFixed(1)} ms`,
        baseline: `${formatNumber(rawRate)} msg/s raw JetStream publish + ack, ${ACCEPT_CONNS} in flight, ${messageBytes} B`,
        ratio: rounded(acceptRatio, 3),
        goal: ">= 0.5x, p99 < 50 ms",
        met: acceptRatio >= 0.5 && acceptLatency.p99 < 50,
        values: {
          reqPerS: rounded(acceptRate),
          p50Ms: rounded(acceptLatency.p50),
          p99Ms: rounded(acceptLatency.p99),
          baselineMsgPerS: rounded(rawRate),
          baselineP99Ms: rounded(rawP99),
          messageBytes,
          connections: ACCEPT_CONNS,
          rounds: ROUNDS,
          secondsPerRun: SECONDS,
          errors: pathErrors[3]! + rawErrors,
          ...Object.fromEntries(accept.runs.map((r, i) => [`reqPerSRound${i + 1}`, rounded(r.summary.reqPerS)])),
          ...cpuValues(acceptCpu),
          baselineCpuUsPerMessage_publisher: Math.round(rawPublisherUs),
          baselineCpuUsPerMessage_natsServer: Math.round(rawNatsUs),
          ...Object.fromEntries(raw.map((r, i) => [`baselineMsgPerSRound${i + 1}`, rounded(r.rate)])),
        },
      },
      {
        id: "read.direct",
        figure: `GET /v1/deliveries/{id} via the gateway / GetDelivery direct (h2load gRPC, no TLS), ${READ_CONNS} conns`,
        platform: `${formatNumber(readRate)} req/s, p99 ${readLatency.p99.toFixed(1)} ms`,
        baseline: `${formatNumber(directRate)} req/s GetDelivery direct, p99 ${latencyOfRuns(direct).p99.toFixed(1)} ms`,
        ratio: rounded(readGoalDirect, 3),
        goal: ">= 0.7x",
        met: readGoalDirect >= 0.7,
        values: {
          reqPerS: rounded(readRate),
          p50Ms: rounded(readLatency.p50),
          p99Ms: rounded(readLatency.p99),
          baselineReqPerS: rounded(directRate),
          baselineP99Ms: rounded(latencyOfRuns(direct).p99),
          connections: READ_CONNS,
          errors: pathErrors[0]! + pathErrors[1]!,
          ...cpuValues(readCpu),
          ...Object.fromEntries(Object.entries(cpuValues(directCpu)).map(([k, v]) => [`direct_${k}`, v])),
        },
      },
      {
        id: "read.bare",
        figure: `GET /v1/deliveries/{id} via the gateway / bare node:http static JSON (${readBytes} B), ${READ_CONNS} conns`,
        platform: `${formatNumber(readRate)} req/s`,
        baseline: `${formatNumber(bareRate)} req/s bare node:http`,
        ratio: rounded(readGoalBare, 3),
        goal: ">= 0.25x",
        met: readGoalBare >= 0.25,
        values: {
          reqPerS: rounded(readRate),
          baselineReqPerS: rounded(bareRate),
          baselineP99Ms: rounded(latencyOfRuns(bareRead).p99),
          bodyBytes: readBytes,
          errors: pathErrors[0]! + pathErrors[2]!,
        },
      },
      {
        id: "memory.idle",
        figure: `RSS per service process, idle (largest of ${idleRss.size})`,
        platform: `${mb(idleMax)} (${idleMaxName})`,
        baseline: `nats-server ${mb(natsIdleRss)}`,
        ratio: null,
        goal: "< 80 MB",
        met: idleRss.size > 0 && idleMax < 80 * MB,
        values: { maxMB: rounded(idleMax / MB, 1), ...perProcess(idleRss, natsIdleRss) },
      },
      {
        id: "memory.accept",
        figure: `RSS per service process under the accept load (largest of ${loadRss.size}; Scheduler stopped)`,
        platform: `${mb(loadMax)} (${loadMaxName})`,
        baseline: `nats-server ${mb(natsLoadRss)}`,
        ratio: null,
        goal: "< 150 MB",
        met: loadRss.size > 0 && loadMax < 150 * MB,
        values: { maxMB: rounded(loadMax / MB, 1), ...perProcess(loadRss, natsLoadRss) },
      },
    ];
    await recordFigures("http", figures);
    if (errors > 0) console.error(`http benchmark: ${errors} request errors`);
    console.log(`http benchmark: done in ${((Date.now() - began) / 1000).toFixed(0)} s`);
    return errors > 0 ? 1 : 0;
  } finally {
    await cleanUp();
  }
}

const roleAt = process.argv.indexOf("--role");
if (roleAt >= 0) {
  const [role, ...args] = process.argv.slice(roleAt + 1);
  if (role === "static-json") staticJsonServer(Number(args[0]), Number(args[1]));
  else if (role === "jetstream-publisher") {
    await jetstreamPublisher(Number(args[0]), Number(args[1]), Number(args[2]));
    process.exit(0);
  } else throw new Error(`unknown role ${role}`);
} else {
  process.exitCode = await main().catch((error: unknown) => {
    console.error(`http benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  });
}
