/**
 * `make chaos`: a bounded fault run on loopback that anyone can repeat.
 *
 * 1. starts the platform through scripts/run.ts, as a supervised child with its own RUN_DIR
 *    (default .run/chaos, emptied first) and free private ports, so a `make run` on the default
 *    ports is not disturbed; run.ts's own lines (`[run] ...`, restarts included) are shown, the
 *    services' output goes to <RUN_DIR>/run.log and <RUN_DIR>/logs/;
 * 2. mints tokens for acct-demo and acct-suspended with the run's development secret and sends
 *    CHAOS_REQUESTS schedule requests through the gateway (POST /v1/deliveryrequests), a mix of
 *    deliveries that complete by drone, by an outside carrier, are cancelled or fail (below), each with its own
 *    Idempotency-Key, CHAOS_CONCURRENCY at a time, retrying 429, 502, 503, 504 and network errors
 *    with the same key (for up to CHAOS_REQUEST_RETRY_MS); every CHAOS_REPEAT_EVERY-th accepted
 *    request is sent again with its key, to check that it answers the same delivery;
 * 3. meanwhile SIGKILLs, spread over the requests and one after the other (each once the previous
 *    victim is back), one instance of every service, the gateway and nats-server; their process
 *    ids come from <RUN_DIR>/pids.json, which run.ts rewrites on every restart, and run.ts's
 *    supervision brings them back;
 *
 *    Cluster mode (CHAOS_NATS_CLUSTER=1, or NATS_CLUSTER_SIZE=3): the platform runs on a 3-node
 *    JetStream cluster with every stream and bucket at 3 replicas (make run's NATS_CLUSTER_SIZE),
 *    and the nats-server killed is the node leading DELIVERY_REQUESTS at that moment (the stream
 *    that holds every accepted request); the run then waits until the restarted node is a current
 *    replica of every stream again, and the report says how long that took and how many streams
 *    are at 3 replicas at the end. CHAOS_KILLS defaults to `nats` there (add services to kill
 *    them too, or `all`);
 * 4. waits until every accepted delivery has ended (GET /v1/deliveries/{id}: COMPLETED, CANCELLED
 *    or FAILED), polling CHAOS_POLL_CONCURRENCY at a time, for at most CHAOS_SETTLE_TIMEOUT_MS,
 *    and no longer than CHAOS_SETTLE_IDLE_MS after the last change of any delivery's stage;
 * 5. looks for duplicates: a key answered with two delivery ids, a delivery listed twice by GET
 *    /v1/deliveries, a drone on two deliveries at overlapping times. The Drone service's
 *    assignments are read from its KV bucket `drones` (keys `assignment.<deliveryId>`) as the
 *    run's NATS `admin` user, whose credentials are in <RUN_DIR>/nats-auth: the public API does
 *    not show drones, and the Drone service's ListDrones / GetAssignment answer no caller;
 * 6. prints the settings and a table (lib/devtools/chaos-report.ts), stops the platform, and exits
 *    1 when anything is stuck, missing or duplicated (or nothing was accepted), 2 when the run
 *    could not be carried out.
 *
 * Settings (environment, defaults):
 *   CHAOS_REQUESTS=2000            schedule requests to send
 *   CHAOS_CONCURRENCY=16           requests in flight
 *   CHAOS_REQUEST_RETRY_MS=60000   how long one request is retried
 *   CHAOS_REPEAT_EVERY=10          send every n-th accepted request again with its key (0: never)
 *   CHAOS_MIX_EVERY=20             of every n requests, one comes from the suspended account (ends
 *                                  FAILED), one carries a parcel too heavy for a drone (an outside
 *                                  carrier), and one is cancelled right after it is accepted (0: none)
 *   CHAOS_KILLS=all                which to SIGKILL, comma-separated: service names, gateway, nats
 *                                  (cluster mode: default nats)
 *   CHAOS_NATS_CLUSTER=0           1: cluster mode (NATS_CLUSTER_SIZE=3 unless set; 1 turns it off)
 *   CHAOS_KILL_SPACING_MS=500      at least this long between two kills (after the previous is back)
 *   CHAOS_SETTLE_TIMEOUT_MS=600000 how long accepted deliveries get to end after the last request
 *   CHAOS_SETTLE_IDLE_MS=60000     stop waiting sooner when no delivery has changed its stage this long
 *   CHAOS_POLL_CONCURRENCY=8       reads in flight while waiting
 *   CHAOS_START_TIMEOUT_MS=180000  how long the platform gets to start
 *   CHAOS_RUN_DIR=.run/chaos       the run's state and logs (emptied at start, kept afterwards)
 *   DRONE_TIME_SCALE=600, DRONE_FLEET_SIZE=200, DRONE_TELEMETRY_HZ=2: fast flights, enough drones
 *   GATEWAY_RATE_LIMIT_REQUESTS=1000000 (the limiter stays on with an allowance the run cannot reach)
 *   LOG_LEVEL=warn                 the services' log level
 * Any other variable (e.g. DELIVERY_INSTANCES=2, RUN_RESTART_MAX_MS) is passed on to run.ts.
 */
import { readdirSync, existsSync, mkdirSync, rmSync, createWriteStream } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AssignmentSchema } from "../gen/dronedelivery/drone/v1/drone_pb.js";
import { readDevSecret } from "../gateway/dev-secret.js";
import { mintToken } from "../gateway/tokens.js";
import {
  formatReport,
  shortStage,
  summarize,
  TERMINAL_STAGES,
  type AssignmentSpan,
  type DeliveryObservation,
  type RequestRecord,
} from "../lib/devtools/chaos-report.js";
import { startSupervisedChild, type SupervisedChild } from "../lib/devtools/supervised-child.js";
import { natsCredentialsFromEnv } from "../lib/nats/auth.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { envPrefix } from "../lib/service/config.js";
import { clusterStreams, type JszPeer } from "../lib/devtools/nats-cluster.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";
const started = Date.now();

function say(message: string): void {
  process.stdout.write(`[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${message}\n`);
}

class ChaosError extends Error {}

function intSetting(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ChaosError(`${name}=${raw} is not a whole number from ${min} to ${max}`);
  return value;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when `port` can be bound on loopback right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (port < 1024 || port > 65535) return resolve(false);
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A port from 20000 up that is free, with `port + offset` free too for every offset, all below
 * 32700, i.e. below Linux's ephemeral range (from 32768): an outgoing connection of the run (a
 * service's NATS connection, a route between clustered nats-servers) never takes one of them from
 * under a process that has yet to bind it.
 */
async function pickPort(offsets: readonly number[] = [0]): Promise<number> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * (12_700 - Math.max(0, ...offsets)));
    const all = offsets.map((o) => port + o);
    if (all.some((p) => taken.has(p))) continue;
    if ((await Promise.all(all.map(portFree))).every(Boolean)) {
      for (const p of all) taken.add(p);
      return port;
    }
  }
  throw new ChaosError("found no free ports on loopback");
}

/** Service folders (services/<name>/main.ts), as run.ts finds them. */
function serviceNames(): string[] {
  const dir = path.join(repoRoot, "services");
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, "main.ts")))
    .map((d) => d.name)
    .sort();
}

interface NatsNodeEntry {
  node: string | null;
  pid: number | null;
  restarts: number;
  url: string;
  monitorUrl: string | null;
}

interface PidFile {
  nats: { pid: number | null; restarts: number };
  natsNodes?: NatsNodeEntry[];
  instances: Record<string, { service: string; pid: number | null; restarts: number }>;
}

// ---------------------------------------------------------------------------------------------

/** Nodes of the JetStream cluster in cluster mode; 1 otherwise. */
const clusterSize = (() => {
  const size = process.env["NATS_CLUSTER_SIZE"]?.trim();
  if (size) return intSetting("NATS_CLUSTER_SIZE", 1, 1, 5);
  return /^(1|true|yes|on)$/i.test(process.env["CHAOS_NATS_CLUSTER"]?.trim() ?? "") ? 3 : 1;
})();

const settings = {
  requests: intSetting("CHAOS_REQUESTS", 2000, 1, 1_000_000),
  concurrency: intSetting("CHAOS_CONCURRENCY", 16, 1, 1000),
  requestRetryMs: intSetting("CHAOS_REQUEST_RETRY_MS", 60_000, 0),
  repeatEvery: intSetting("CHAOS_REPEAT_EVERY", 10, 0),
  mixEvery: intSetting("CHAOS_MIX_EVERY", 20, 0),
  killSpacingMs: intSetting("CHAOS_KILL_SPACING_MS", 500, 0),
  settleTimeoutMs: intSetting("CHAOS_SETTLE_TIMEOUT_MS", 600_000, 0),
  settleIdleMs: intSetting("CHAOS_SETTLE_IDLE_MS", 60_000, 1_000),
  pollConcurrency: intSetting("CHAOS_POLL_CONCURRENCY", 8, 1, 1000),
  startTimeoutMs: intSetting("CHAOS_START_TIMEOUT_MS", 180_000, 1_000),
  runDir: path.resolve(repoRoot, process.env["CHAOS_RUN_DIR"]?.trim() || path.join(".run", "chaos")),
  kills: process.env["CHAOS_KILLS"]?.trim() || (clusterSize > 1 ? "nats" : "all"),
};
/** Platform settings with the chaos run's defaults; the environment overrides them. */
const platformDefaults: Record<string, string> = {
  DRONE_TIME_SCALE: "600",
  DRONE_FLEET_SIZE: "200",
  DRONE_TELEMETRY_HZ: "2",
  GATEWAY_RATE_LIMIT_REQUESTS: "1000000",
  LOG_LEVEL: "warn",
};
const platformSettings: Record<string, string> = Object.fromEntries(
  Object.entries(platformDefaults).map(([k, v]) => [k, process.env[k]?.trim() || v]),
);

let run: SupervisedChild | undefined;
let interrupted = false;

async function stopPlatform(): Promise<void> {
  if (!run || run.hasExited()) return;
  say("stopping the platform ...");
  const exit = await run.stop({ timeoutMs: 60_000 });
  say(`platform stopped (${exit.signal ? `signal ${exit.signal}` : `status ${exit.code}`})`);
}

process.on("SIGINT", () => {
  if (interrupted) {
    run?.kill();
    process.exit(130);
  }
  interrupted = true;
  say("interrupted: stopping the platform (Ctrl-C again to kill it at once)");
  void stopPlatform().then(() => process.exit(130));
});
process.on("SIGTERM", () => {
  void stopPlatform().then(() => process.exit(143));
});

function readPids(): PidFile | undefined {
  try {
    return JSON.parse(readFileSync(path.join(settings.runDir, "pids.json"), "utf8")) as PidFile;
  } catch {
    return undefined;
  }
}

/** Starts scripts/run.ts and waits until the gateway is SERVING. */
async function startPlatform(): Promise<{ baseUrl: string; env: Record<string, string> }> {
  rmSync(settings.runDir, { recursive: true, force: true });
  mkdirSync(settings.runDir, { recursive: true });
  const names = serviceNames();
  const instancesOf = (name: string) => Number(process.env[`${envPrefix(name)}INSTANCES`]?.trim() || "1") || 1;
  // One client, monitoring and route port per nats-server (make run gives node i the base + i - 1).
  const natsOffsets = Array.from({ length: clusterSize }, (_, i) => i);
  const ports: Record<string, string> = {
    NATS_PORT: String(await pickPort(natsOffsets)),
    NATS_HTTP_PORT: String(await pickPort(natsOffsets)),
    ...(clusterSize > 1 ? { NATS_CLUSTER_PORT: String(await pickPort(natsOffsets)), NATS_CLUSTER_SIZE: String(clusterSize) } : {}),
    GATEWAY_GRPC_PORT: String(await pickPort()),
  };
  // The gateway's admin port (metrics) is its port + 1000, as make run has it.
  const gatewayPort = await pickPort([0, 1000]);
  ports["GATEWAY_PORT"] = String(gatewayPort);
  ports["GATEWAY_ADMIN_PORT"] = String(gatewayPort + 1000);
  for (const name of names) {
    const offsets = Array.from({ length: instancesOf(name) }, (_, i) => [i * 100, i * 100 + 1000]).flat();
    ports[`${envPrefix(name)}PORT`] = String(await pickPort(offsets));
  }
  const env: Record<string, string> = {
    ...platformSettings,
    ...ports,
    RUN_DIR: settings.runDir,
    // Everything of this run lives in its RUN_DIR, whatever the shell has set for `make run`.
    NATS_AUTH_DIR: "",
    INTERNAL_PKI_DIR: "",
    GATEWAY_DEV_SECRET_FILE: "",
    GATEWAY_JWT_SECRET: "",
    NATS_URL: "",
  };
  if (clusterSize === 1) env["NATS_CLUSTER_SIZE"] = "1";
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of names) delete childEnv[`${envPrefix(name)}ADDRESS`];

  const log = createWriteStream(path.join(settings.runDir, "run.log"));
  let ready = false;
  let gatewayUp = false;
  run = startSupervisedChild({
    name: "run",
    command: process.execPath,
    args: nodeArgsFor("scripts/run.ts"),
    cwd: repoRoot,
    env: childEnv,
    onLine: (line) => {
      log.write(line + "\n");
      if (line.startsWith("[run]")) process.stdout.write(`  ${line}\n`);
      if (line.includes("Press Ctrl-C to stop.")) ready = true;
      if (line.includes("export TOKEN=")) gatewayUp = true;
    },
    onParentExit: "SIGTERM",
    orphanStopTimeoutMs: 30_000,
  });
  say(`platform starting: scripts/run.ts with RUN_DIR=${path.relative(repoRoot, settings.runDir) || "."} (its output: ${path.relative(repoRoot, path.join(settings.runDir, "run.log"))})`);
  const until = Date.now() + settings.startTimeoutMs;
  while (!(ready && gatewayUp)) {
    if (run.hasExited()) throw new ChaosError(`scripts/run.ts exited during start-up:\n${run.logTail(30)}`);
    if (Date.now() > until) throw new ChaosError(`the platform did not start within ${settings.startTimeoutMs} ms:\n${run.logTail(30)}`);
    await sleep(200);
  }
  return { baseUrl: `http://${HOST}:${ports["GATEWAY_PORT"]}`, env };
}

// --- requests --------------------------------------------------------------------------------

const RETRY_STATUSES = new Set([429, 502, 503, 504]);
/** One deadline for every request of the run, so that a request sent again is the same request. */
const DEADLINE = new Date(Date.now() + 6 * 3600_000).toISOString();

interface Answer {
  status: number | "network";
  body: string;
  retryAfterMs?: number | undefined;
}

async function call(url: string, init: RequestInit): Promise<Answer> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    const body = await response.text();
    const retryAfter = Number(response.headers.get("retry-after"));
    return { status: response.status, body, ...(retryAfter > 0 ? { retryAfterMs: Math.min(retryAfter * 1000, 5_000) } : {}) };
  } catch (error) {
    return { status: "network", body: (error as Error).message };
  }
}

/**
 * What a request is: flown by a drone (most), from the suspended account (it ends FAILED), a
 * parcel too heavy for any drone (an outside carrier takes it), or cancelled right after it is
 * accepted (it ends CANCELLED, or COMPLETED when the drone was faster).
 */
type RequestKind = "drone" | "suspended" | "heavy" | "cancel";

function kindOf(index: number): RequestKind {
  if (settings.mixEvery <= 0) return "drone";
  switch (index % settings.mixEvery) {
    case 1:
      return "suspended";
    case 2:
      return "heavy";
    case 3:
      return "cancel";
    default:
      return "drone";
  }
}

/** Retries `send` with a growing pause while the answer is a network error or a retryable status. */
async function withRetries(send: () => Promise<Answer>): Promise<{ answer: Answer; final: boolean }> {
  const until = Date.now() + settings.requestRetryMs;
  let backoff = 100;
  for (;;) {
    const answer = await send();
    const retryable = answer.status === "network" || RETRY_STATUSES.has(answer.status);
    if (!retryable) return { answer, final: true };
    if (Date.now() + backoff > until) return { answer, final: false };
    await sleep(answer.retryAfterMs ?? backoff);
    backoff = Math.min(backoff * 2, 2_000);
  }
}

/** Cancels an accepted delivery (DELETE /v1/deliveryrequests/{id}); the final status. */
async function cancel(baseUrl: string, token: string, id: string): Promise<string> {
  const { answer } = await withRetries(() =>
    call(`${baseUrl}/v1/deliveryrequests/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ reason: "chaos run: cancelled right after it was accepted" }),
    }),
  );
  return String(answer.status);
}

/** POSTs one schedule request, retrying with the same key; the delivery id, or why not. */
async function schedule(baseUrl: string, token: string, key: string, index: number): Promise<{ id?: string; last: string; final: boolean }> {
  const heavy = kindOf(index) === "heavy";
  const body = JSON.stringify({
    pickup: { latitude: 47.61 + (index % 7) * 0.001, longitude: -122.33 },
    dropoff: { latitude: 47.62, longitude: -122.35 + (index % 5) * 0.001 },
    deadline: DEADLINE,
    confirmationRequired: "CONFIRMATION_TYPE_NONE",
    packageInfo: { packageId: `pkg-${key}`, size: heavy ? "PACKAGE_SIZE_LARGE" : "PACKAGE_SIZE_SMALL", weightKg: heavy ? 40 : 1.5 },
  });
  const { answer, final } = await withRetries(() =>
    call(`${baseUrl}/v1/deliveryrequests`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": key },
      body,
    }),
  );
  if (answer.status !== 202) return { last: String(answer.status), final };
  try {
    const id = (JSON.parse(answer.body) as { deliveryId?: string }).deliveryId;
    if (id) return { id, last: "202", final: true };
  } catch {
    // Fall through: a 202 without a delivery id is reported as such.
  }
  return { last: "202 without a delivery id", final: true };
}

/** Runs `work` over `items`, `concurrency` at a time. */
async function pool<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length && !interrupted) {
        const index = next++;
        await work(items[index]!, index);
      }
    }),
  );
}

// --- faults ----------------------------------------------------------------------------------

interface Victim {
  /** `delivery`, `gateway`, `nats-server`. */
  label: string;
  /** The instance in pids.json, or undefined for nats-server. */
  instance?: string;
}

function victims(): Victim[] {
  const pids = readPids();
  if (!pids) throw new ChaosError("pids.json of the run is missing");
  const byService = new Map<string, string>();
  for (const [label, instance] of Object.entries(pids.instances)) {
    if (!byService.has(instance.service)) byService.set(instance.service, label);
  }
  const wanted = settings.kills === "all" ? undefined : new Set(settings.kills.split(",").map((s) => s.trim()));
  const list: Victim[] = [...byService].map(([service, label]) => ({ label: service, instance: label }));
  // nats-server in the middle, the gateway late, so that both hit requests in flight.
  list.splice(Math.floor(list.length / 2), 0, { label: "nats-server" });
  const all = list.filter((v) => !wanted || wanted.has(v.label) || (v.label === "nats-server" && wanted.has("nats")));
  const gateway = all.findIndex((v) => v.label === "gateway");
  if (gateway >= 0) all.splice(all.length - 1, 0, ...all.splice(gateway, 1));
  return all;
}

interface Kill {
  victim: string;
  pid: number;
  at: number;
  afterRequests: number;
  backAfterMs?: number;
  /** Cluster mode: why this node, and when it was a current replica of every stream again. */
  note?: string;
  caughtUpAfterMs?: number;
}

const REQUESTS_STREAM = "DELIVERY_REQUESTS";

/** Cluster mode: the node to kill, the leader of DELIVERY_REQUESTS (else the second node). */
async function pickNatsNode(nodes: NatsNodeEntry[]): Promise<{ index: number; note: string }> {
  for (const node of nodes) {
    if (!node.monitorUrl) continue;
    try {
      const leader = (await clusterStreams(node.monitorUrl)).find((st) => st.name === REQUESTS_STREAM)?.leader;
      const index = nodes.findIndex((n) => n.node === leader);
      if (index >= 0) return { index, note: `leader of ${REQUESTS_STREAM}` };
    } catch {
      // That node does not answer: ask the next.
    }
  }
  return { index: Math.min(1, nodes.length - 1), note: `no leader of ${REQUESTS_STREAM} found` };
}

/**
 * Cluster mode: resolves once `node` holds every stream up to where its leader was a moment before
 * (last sequence) and every leader sees it as a current replica; the number of streams, or
 * undefined after `timeoutMs`.
 */
async function waitUntilCurrent(node: string, monitorUrls: string[], timeoutMs: number): Promise<number | undefined> {
  const until = Date.now() + timeoutMs;
  const own = nodeNames.indexOf(node);
  while (Date.now() < until && !interrupted) {
    try {
      const views = await Promise.all(monitorUrls.map((url) => clusterStreams(url)));
      const mine = await clusterStreams(monitorUrls[own] ?? "");
      const names = new Set(views.flat().map((st) => st.name));
      const current = [...names].filter((name) => {
        const leaderName = views.flat().find((st) => st.name === name)?.leader;
        const leaderIndex = nodeNames.indexOf(leaderName ?? "");
        const atLeader = views[leaderIndex]?.find((st) => st.name === name);
        const atNode = mine.find((st) => st.name === name);
        if (!atLeader || !atNode || atNode.lastSeq < atLeader.lastSeq) return false;
        if (leaderName === node) return true;
        const peers: JszPeer[] = atLeader.peers;
        return peers.some((p) => p.name === node && p.current);
      });
      if (names.size > 0 && current.length === names.size) return names.size;
    } catch {
      // A node still starting: ask again.
    }
    await sleep(250);
  }
  return undefined;
}

/** Node names of the cluster by position (n1, n2, ...), from pids.json. */
let nodeNames: (string | null)[] = [];

async function killAndWait(victim: Victim, progress: () => number, kills: Kill[]): Promise<void> {
  const before = readPids();
  let entry: { pid: number | null; restarts: number } | undefined = victim.instance ? before?.instances[victim.instance] : before?.nats;
  let label = victim.label;
  let node: { index: number; note: string; name: string } | undefined;
  const nodes = before?.natsNodes ?? [];
  if (!victim.instance && nodes.length > 1) {
    nodeNames = nodes.map((n) => n.node);
    const picked = await pickNatsNode(nodes);
    node = { ...picked, name: nodes[picked.index]?.node ?? `n${picked.index + 1}` };
    entry = nodes[picked.index];
    label = `nats-server ${node.name}`;
  }
  if (!entry?.pid) {
    say(`cannot kill ${label}: no process id in pids.json (restarting?); skipped`);
    return;
  }
  const restarts = entry.restarts;
  const pid = entry.pid;
  try {
    process.kill(pid, "SIGKILL");
  } catch (error) {
    say(`SIGKILL ${label} (pid ${pid}) failed: ${(error as Error).message}`);
    return;
  }
  const kill: Kill = { victim: label, pid, at: Date.now(), afterRequests: progress(), ...(node ? { note: node.note } : {}) };
  kills.push(kill);
  say(`SIGKILL ${label} (pid ${pid}${node ? `, ${node.note}` : ""}) after ${kill.afterRequests} requests`);
  const until = Date.now() + 60_000;
  while (Date.now() < until && !interrupted) {
    const now = readPids();
    const current = node ? now?.natsNodes?.[node.index] : victim.instance ? now?.instances[victim.instance] : now?.nats;
    if (current && current.restarts > restarts && current.pid && current.pid !== pid) {
      kill.backAfterMs = Date.now() - kill.at;
      say(`${label} is back (pid ${current.pid}) after ${(kill.backAfterMs / 1000).toFixed(1)} s`);
      if (node) {
        const streams = await waitUntilCurrent(node.name, nodes.map((n) => n.monitorUrl ?? ""), 120_000);
        if (streams === undefined) say(`${label} was not a current replica of every stream within 120 s of its restart`);
        else {
          kill.caughtUpAfterMs = Date.now() - kill.at;
          say(`${label} is a current replica of all ${streams} streams again, ${(kill.caughtUpAfterMs / 1000).toFixed(1)} s after the kill`);
        }
      }
      return;
    }
    await sleep(100);
  }
  say(`${label} did not come back within 60 s`);
}

/** Replicas of every stream and bucket: NATS_REPLICAS, else make run's default (the cluster size, at most 3). */
const askedReplicas = Number(process.env["NATS_REPLICAS"]?.trim() || Math.min(clusterSize, 3));

/** Cluster mode: how many streams (KV buckets included) every node shows at the asked replicas or more, with a leader. */
async function replicaSummary(): Promise<string | undefined> {
  const nodes = readPids()?.natsNodes ?? [];
  if (nodes.length <= 1) return undefined;
  const lines: string[] = [];
  for (const node of nodes) {
    try {
      const streams = await clusterStreams(node.monitorUrl ?? "");
      const full = streams.filter((st) => st.replicas >= askedReplicas && st.leader).length;
      lines.push(`${node.node}: ${full}/${streams.length} streams at ${askedReplicas}+ replicas with a leader`);
    } catch (error) {
      lines.push(`${node.node}: /jsz did not answer (${(error as Error).message})`);
    }
  }
  return lines.join("; ");
}

// --- reading the outcome ----------------------------------------------------------------------

async function readDelivery(baseUrl: string, token: string, id: string): Promise<DeliveryObservation> {
  const answer = await call(`${baseUrl}/v1/deliveries/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}` } });
  if (answer.status === 404) return { id, notFound: true };
  if (answer.status !== 200) return { id, notFound: false, error: `${answer.status}` };
  const delivery = JSON.parse(answer.body) as { stage?: string; failureCode?: string; endReason?: string };
  const failure = delivery.failureCode && delivery.failureCode !== "FAILURE_CODE_UNSPECIFIED" ? delivery.failureCode.replace(/^FAILURE_CODE_/, "") : delivery.endReason;
  return { id, notFound: false, stage: shortStage(delivery.stage ?? "DELIVERY_STAGE_UNSPECIFIED"), failure: failure || undefined };
}

async function listDeliveries(baseUrl: string, token: string): Promise<string[] | undefined> {
  const ids: string[] = [];
  let pageToken = "";
  for (let page = 0; page < 10_000; page++) {
    const query = new URLSearchParams({ pageSize: "100", ...(pageToken ? { pageToken } : {}) });
    const answer = await call(`${baseUrl}/v1/deliveries?${query}`, { headers: { authorization: `Bearer ${token}` } });
    if (answer.status !== 200) {
      say(`GET /v1/deliveries answered ${answer.status}: ${answer.body.slice(0, 200)}; the list is not checked`);
      return undefined;
    }
    const body = JSON.parse(answer.body) as { deliveries?: { deliveryId: string }[]; nextPageToken?: string };
    for (const d of body.deliveries ?? []) ids.push(d.deliveryId);
    pageToken = body.nextPageToken ?? "";
    if (!pageToken) return ids;
  }
  return ids;
}

/** The Drone service's assignments, from its KV bucket, as the run's NATS admin user. */
async function readAssignments(natsUrl: string): Promise<AssignmentSpan[] | undefined> {
  let nc;
  try {
    nc = await connectNats({
      url: natsUrl,
      name: "chaos",
      maxReconnectAttempts: 5,
      ...natsCredentialsFromEnv({ NATS_AUTH_DIR: path.join(settings.runDir, "nats-auth") }, "admin"),
    });
    const kv = await nc.jetstream().views.kv("drones", { bindOnly: true });
    const keys: string[] = [];
    for await (const key of await kv.keys("assignment.>")) keys.push(key);
    const spans: AssignmentSpan[] = [];
    await pool(keys, 32, async (key) => {
      const entry = await kv.get(key);
      if (!entry || entry.operation !== "PUT") return;
      const a = fromBinary(AssignmentSchema, entry.value);
      spans.push({
        deliveryId: a.deliveryId,
        droneId: a.droneId,
        start: a.assignTime ? timestampMs(a.assignTime) : 0,
        end: a.endTime ? timestampMs(a.endTime) : undefined,
      });
    });
    return spans;
  } catch (error) {
    say(`could not read the drone assignments: ${(error as Error).message}; overlaps are not checked`);
    return undefined;
  } finally {
    await drainQuietly(nc);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const printed = [
    `requests ${settings.requests}, ${settings.concurrency} in flight, each retried up to ${settings.requestRetryMs} ms; every ${settings.repeatEvery || "-"}th sent again with its key`,
    `mix: of every ${settings.mixEvery || "-"} requests one from the suspended account, one too heavy for a drone, one cancelled at once`,
    `kills: ${settings.kills}, at least ${settings.killSpacingMs} ms apart; settle up to ${settings.settleTimeoutMs} ms (${settings.settleIdleMs} ms without progress), ${settings.pollConcurrency} reads in flight`,
    `platform: ${Object.entries(platformSettings).map(([k, v]) => `${k}=${v}`).join(" ")}`,
    `run dir: ${settings.runDir}`,
    ...(clusterSize > 1 ? [`NATS: a ${clusterSize}-node JetStream cluster (NATS_CLUSTER_SIZE=${clusterSize}), NATS_REPLICAS=${askedReplicas}`] : []),
  ];
  say("settings:");
  for (const line of printed) process.stdout.write(`    ${line}\n`);

  const { baseUrl, env } = await startPlatform();
  const secret = readDevSecret(path.join(settings.runDir, "gateway-dev-secret"));
  if (!secret) throw new ChaosError(`no development secret in ${settings.runDir}/gateway-dev-secret`);
  const token = await mintToken("acct-demo", secret, 6 * 3600);
  const suspendedToken = await mintToken("acct-suspended", secret, 6 * 3600);
  const tokenOf = (index: number) => (kindOf(index) === "suspended" ? suspendedToken : token);
  /** The token that reads each accepted delivery (its owner's). */
  const readerOf = new Map<string, string>();
  const cancels = new Map<string, number>();
  say(`platform ready; gateway ${baseUrl}; sending ${settings.requests} schedule requests`);

  const runId = `${Date.now().toString(36)}`;
  const keys = Array.from({ length: settings.requests }, (_, i) => `chaos-${runId}-${i}`);
  const records = new Map<string, { ids: Set<string>; outcome: RequestRecord["outcome"]; last?: string; resentAnswer?: string | undefined }>();
  let done = 0;
  let sending = true;
  const targets = victims();
  const kills: Kill[] = [];
  const faults = (async () => {
    for (let k = 0; k < targets.length && !interrupted; k++) {
      // Spread over the first four fifths of the requests: a kill and its restart take about a
      // second or two, and the requests may flow fast. Kills left when the last request has been
      // answered happen while the accepted deliveries are still being worked on.
      const threshold = Math.floor(((k + 1) * settings.requests * 0.8) / (targets.length + 1));
      while (sending && done < threshold && !interrupted) await sleep(50);
      if (kills.length > 0) await sleep(settings.killSpacingMs);
      await killAndWait(targets[k]!, () => done, kills);
    }
  })();
  const sendStart = Date.now();
  const ticker = setInterval(() => say(`${done}/${settings.requests} requests answered`), 5_000);
  try {
    await pool(keys, settings.concurrency, async (key, index) => {
      const first = await schedule(baseUrl, tokenOf(index), key, index);
      const record = {
        ids: new Set<string>(),
        outcome: (first.id ? "accepted" : first.final ? "rejected" : "unanswered") as RequestRecord["outcome"],
        last: first.last,
        resentAnswer: undefined as string | undefined,
      };
      if (first.id) {
        record.ids.add(first.id);
        readerOf.set(first.id, tokenOf(index));
        if (kindOf(index) === "cancel") {
          const status = await cancel(baseUrl, tokenOf(index), first.id);
          cancels.set(status, (cancels.get(status) ?? 0) + 1);
        }
      }
      if (first.id && settings.repeatEvery > 0 && index % settings.repeatEvery === 0) {
        const again = await schedule(baseUrl, tokenOf(index), key, index);
        if (again.id) record.ids.add(again.id);
        else record.resentAnswer = again.last;
      }
      records.set(key, record);
      done++;
    });
  } finally {
    sending = false;
    clearInterval(ticker);
  }
  const sendMs = Date.now() - sendStart;
  say(`all ${settings.requests} requests answered in ${(sendMs / 1000).toFixed(1)} s; waiting for the remaining kills`);
  await faults;
  if (interrupted) return 130;

  // Settle: every accepted delivery read until it has ended or the time is up.
  const accepted = [...new Set([...records.values()].flatMap((r) => [...r.ids]))];
  const observations = new Map<string, DeliveryObservation>();
  const settleUntil = Date.now() + settings.settleTimeoutMs;
  let lastChange = Date.now();
  say(`waiting up to ${settings.settleTimeoutMs / 1000} s for ${accepted.length} accepted deliveries to end`);
  for (;;) {
    const open = accepted.filter((id) => !TERMINAL_STAGES.includes(observations.get(id)?.stage ?? ""));
    if (open.length === 0 || interrupted) break;
    await pool(open, settings.pollConcurrency, async (id) => {
      const before = observations.get(id);
      const now = await readDelivery(baseUrl, readerOf.get(id) ?? token, id);
      if (now.stage !== before?.stage || now.notFound !== before?.notFound) lastChange = Date.now();
      observations.set(id, now);
    });
    const still = accepted.filter((id) => !TERMINAL_STAGES.includes(observations.get(id)?.stage ?? ""));
    const notFound = still.filter((id) => observations.get(id)?.notFound).length;
    say(`${accepted.length - still.length}/${accepted.length} ended; ${still.length - notFound} in progress, ${notFound} not found`);
    if (still.length === 0) break;
    if (Date.now() >= settleUntil) {
      say(`stopped waiting: CHAOS_SETTLE_TIMEOUT_MS (${settings.settleTimeoutMs} ms) has passed`);
      break;
    }
    if (Date.now() - lastChange >= settings.settleIdleMs) {
      say(`stopped waiting: no delivery changed its stage for ${settings.settleIdleMs / 1000} s (CHAOS_SETTLE_IDLE_MS)`);
      break;
    }
    await sleep(1_000);
  }
  if (interrupted) return 130;

  const listed = await listDeliveries(baseUrl, token);
  const natsUrl = Array.from({ length: clusterSize }, (_, i) => `nats://${HOST}:${Number(env["NATS_PORT"]) + i}`).join(",");
  const assignments = await readAssignments(natsUrl);
  const replicas = await replicaSummary();
  const report = summarize({
    requests: keys.map((key) => {
      const r = records.get(key);
      return r
        ? { key, ids: [...r.ids], outcome: r.outcome, ...(r.last ? { lastAnswer: r.last } : {}), ...(r.resentAnswer ? { resentAnswer: r.resentAnswer } : {}) }
        : { key, ids: [], outcome: "unanswered" as const };
    }),
    observations,
    listed,
    assignments,
    now: Date.now(),
  });
  await stopPlatform();

  const lines = [
    "",
    "Chaos run",
    ...printed.map((l) => `  ${l}`),
    `  sending took ${(sendMs / 1000).toFixed(1)} s; total ${((Date.now() - started) / 1000).toFixed(1)} s`,
    `  cancels sent: ${[...cancels].map(([status, n]) => `${n} answered ${status}`).join(", ") || "none"}`,
    `  kills: ${
      kills
        .map(
          (k) =>
            `${k.victim}${k.note ? ` (${k.note})` : ""} after ${k.afterRequests} (back in ${k.backAfterMs !== undefined ? `${(k.backAfterMs / 1000).toFixed(1)} s` : "-"}` +
            `${k.note ? `, a current replica of every stream ${k.caughtUpAfterMs !== undefined ? `${(k.caughtUpAfterMs / 1000).toFixed(1)} s after the kill` : "not within 120 s"}` : ""})`,
        )
        .join(", ") || "none"
    }`,
    ...(replicas ? [`  cluster: ${clusterSize} nats-servers; at the end ${replicas}`] : []),
    "",
    ...formatReport(report),
    `  logs: ${path.relative(process.cwd(), settings.runDir) || "."}/run.log and logs/`,
    "",
  ];
  process.stdout.write(lines.join("\n") + "\n");
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    process.stderr.write(`[chaos] ${error instanceof ChaosError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await stopPlatform().catch(() => {});
    process.exit(2);
  },
);
