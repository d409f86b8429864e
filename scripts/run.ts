/**
 * `make run`: the local process supervisor.
 *
 * 1. creates the data directory (git-ignored): JetStream store in <RUN_DIR>/nats (a cluster's
 *    node i in <RUN_DIR>/nats/n<i>, its configuration in <RUN_DIR>/nats/n<i>.conf), logs in
 *    <RUN_DIR>/logs;
 * 2. starts nats-server with JetStream on 127.0.0.1 and waits until it accepts connections; with
 *    NATS_CLUSTER_SIZE=3, three nats-servers clustered on loopback (lib/devtools/nats-cluster.ts)
 *    and waits until they have formed the JetStream cluster;
 * 3. creates the platform's streams with NATS_REPLICAS replicas, or raises the replicas of
 *    existing ones (never lowers them; lib/nats/streams.ts); the services create their KV buckets
 *    the same way, NATS_REPLICAS being in their environment;
 * 4. starts every service, i.e. every folder services/<name>/ holding a main.ts, with NATS_URL (the
 *    client URL of every node, comma-separated), NATS_REPLICAS and SERVICE_NAME set, as compiled JavaScript when `make build` compiled it and the build is
 *    current, else as `node --import tsx services/<name>/main.ts` (lib/devtools/service-command.ts;
 *    PLATFORM_RUNTIME=tsx forces the latter), prefixing each line it prints with its name (and
 *    copying it to <RUN_DIR>/logs/<name>.log);
 * 5. waits until every service of the service registry (lib/service/registry.ts) reports SERVING on
 *    grpc.health.v1 (RUN_READY_TIMEOUT_MS), then prints a table of service, address and health, and
 *    waits.
 *
 * It then supervises, like a process manager: a service instance or the gateway that exits on its
 * own is started again after a back-off (RUN_RESTART_MIN_MS doubling up to RUN_RESTART_MAX_MS, back
 * to the minimum once an instance has run RUN_RESTART_RESET_MS), and so is nats-server (each node of
 * a cluster on its own), on the same ports, configuration, users and store; the services reconnect
 * to it by themselves (to another node meanwhile), and a cluster node catches up when it is back. Every restart
 * is logged with the instance, how it ended and when it comes back. <RUN_DIR>/pids.json lists the
 * process id of every child (rewritten on every restart; removed on a clean stop).
 *
 * Ctrl-C (SIGINT) or SIGTERM stops the services first (SIGTERM, then SIGKILL after
 * RUN_STOP_TIMEOUT_MS), then nats-server, and exits 0; a second Ctrl-C kills everything at once.
 * No child outlives this process, even if it is killed (see lib/devtools/supervised-child.ts).
 *
 * Environment (defaults):
 *   NATS_PORT=4222             NATS client port (cluster node i: NATS_PORT + i - 1)
 *   NATS_HTTP_PORT=8222        NATS HTTP monitoring port (cluster node i: NATS_HTTP_PORT + i - 1)
 *   NATS_CLUSTER_SIZE=1        nats-servers to run as one JetStream cluster (1-5; 3 survives the
 *                              loss of any one)
 *   NATS_CLUSTER_PORT=6222     route port of cluster node 1 (node i: NATS_CLUSTER_PORT + i - 1)
 *   NATS_REPLICAS              copies of every stream and KV bucket (1 to NATS_CLUSTER_SIZE;
 *                              default the cluster size, at most 3); raised on existing ones,
 *                              never lowered
 *   RUN_DIR=.run               data directory (relative to the repository root)
 *   RUN_SERVICES_DIR=services  where services are looked for (relative to the repository root)
 *   RUN_STOP_TIMEOUT_MS=10000  how long a service or nats-server gets to stop before SIGKILL
 *   RUN_READY_TIMEOUT_MS=30000 how long services get to report SERVING before the table is printed
 *                              anyway (the token and curl commands follow once the gateway is up)
 *   RUN_RESTART_MIN_MS=500     first back-off before a child that exited is started again
 *   RUN_RESTART_MAX_MS=10000   back-off cap (it doubles on every exit in a row)
 *   RUN_RESTART_RESET_MS=20000 a child that ran this long is healthy again: back-off from the start
 *   RUN_EXIT_AFTER_READY       when 1 (or true): start everything, print the table, stop, exit 0
 *   <NAME>_PORT                a service's gRPC port (default: its registry entry's port)
 *   <NAME>_INSTANCES=1         how many instances of a service to run (1-9); instance i listens
 *                              on <NAME>_PORT + 100 (i-1), and callers balance over all of them
 *   GATEWAY_INSTANCES=1        how many gateways (1-9); gateway i listens on GATEWAY_PORT,
 *                              GATEWAY_GRPC_PORT and GATEWAY_ADMIN_PORT + 100 (i-1) each (Node's
 *                              HTTP server cannot share one port between processes); clients pick
 *                              any of them (or a load balancer in front spreads them)
 *   INTERNAL_TLS=on            mutual TLS between services (off: plaintext, for debugging only)
 *   INTERNAL_PKI_DIR           development CA and certificates (default <RUN_DIR>/pki)
 *   NATS_AUTH=on               one NATS user per service with its subject permissions (off: none)
 *   NATS_AUTH_DIR              the generated NATS users (default <RUN_DIR>/nats-auth)
 * Each service instance serves Prometheus metrics on its gRPC port + 1000 (/metrics); the gateway
 * on its own port.
 *   NATS_SERVER_BIN            nats-server binary (default: PATH, /usr/sbin, /usr/bin; with replicas > 1 and a
 *                              server older than 2.10, Debian trixie's 2.10 fetched into .run/nats-server-trixie)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_NATS_CLUSTER_PORT,
  launchNatsCluster,
  launchNatsClusterNode,
  planNatsCluster,
  probeRevisionChecks,
  type NatsClusterOptions,
} from "../lib/devtools/nats-cluster.js";
import {
  launchNatsServer,
  NatsServerNotFoundError,
  NatsServerStartError,
  resolveNatsServerBin,
  type RunningNatsServer,
} from "../lib/devtools/nats-server.js";
import { commandPidOf, startSupervisedChild, type ChildExit, type SupervisedChild } from "../lib/devtools/supervised-child.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";
import { ensureNatsAuth, natsAuthEnabled, type NatsAuth } from "../lib/nats/auth.js";
import type { NatsConnection } from "nats";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { ensureStreams, type EnsureStreamResult } from "../lib/nats/streams.js";
import { ensureDevPki, PKI_IDENTITIES, tlsEnabled } from "../lib/security/index.js";
import { envPrefix } from "../lib/service/config.js";
import { waitForHealth } from "../lib/service/health-probe.js";
import { DEFAULT_GATEWAY_GRPC_PORT } from "../gateway/config.js";
import { PLATFORM_REGISTRY } from "../lib/service/registry.js";
import { runPlan, type PlannedProcess } from "../lib/service/run-plan.js";
import { loadOrCreateDevSecret } from "../gateway/dev-secret.js";
import { mintToken } from "../gateway/tokens.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";

function say(message: string): void {
  process.stdout.write(`[run] ${message}\n`);
}

function complain(message: string): void {
  process.stderr.write(`[run] ${message}\n`);
}

class ConfigError extends Error {}

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name}=${raw} is not a whole number from ${min} to ${max}`);
  }
  return value;
}

function flagFromEnv(name: string): boolean {
  return /^(1|true|yes|on)$/i.test(process.env[name]?.trim() ?? "");
}

/** A path for display: relative to the current directory when inside it. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : p;
}

function describeExit(exit: ChildExit): string {
  return exit.signal ? `signal ${exit.signal}` : `status ${exit.code}`;
}

/** Back-off of restarts: from `minMs`, doubling on every exit in a row, at most `maxMs`. */
interface RestartPolicy {
  readonly minMs: number;
  readonly maxMs: number;
  /** A child that ran at least this long starts the back-off from the minimum again. */
  readonly resetMs: number;
}

/** What a supervised slot (a service instance, the gateway or nats-server) keeps across restarts. */
interface Restarts {
  /** Exits in a row, each after less than resetMs of running. */
  failures: number;
  /** Restarts so far. */
  count: number;
  startedAt: number;
  timer?: NodeJS.Timeout | undefined;
}

/** The delay before the next start, and the updated count of failures in a row. */
function nextRestartDelay(policy: RestartPolicy, restarts: Restarts, now: number): number {
  if (now - restarts.startedAt >= policy.resetMs) restarts.failures = 0;
  const delay = Math.min(policy.maxMs, policy.minMs * 2 ** restarts.failures);
  restarts.failures++;
  return delay;
}

interface Service {
  name: string;
  main: string;
  logFile: string;
  child: SupervisedChild;
  restarts: Restarts;
  /** Starts a fresh process for this instance. */
  spawn: () => SupervisedChild;
  /** host:port of its gRPC server (a service of the registry) or HTTP server (the gateway). */
  address?: string;
  /** Its health once started: SERVING, or what it answered instead. */
  health?: string;
  /** Where its Prometheus metrics are scraped. */
  metricsUrl?: string;
}

/** Folders of `servicesDir` that hold a main.ts, sorted by name. */
function discoverServices(servicesDir: string): { name: string; main: string }[] {
  if (!existsSync(servicesDir)) return [];
  return readdirSync(servicesDir, { withFileTypes: true })
    .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && existsSync(path.join(servicesDir, d.name, "main.ts")))
    .map((d) => ({ name: d.name, main: path.join(servicesDir, d.name, "main.ts") }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Ports of a service's further instances: +100, +200, ... */
const INSTANCE_PORT_STEP = 100;
/** A service instance's metrics port: its gRPC port + 1000. */
const METRICS_PORT_OFFSET = 1000;

interface InstancePlan {
  readonly name: string;
  /** `delivery`, or `delivery#2` when there are several. */
  readonly label: string;
  readonly main: string;
  readonly port: number | undefined;
  /** service, gateway or unregistered (lib/service/run-plan.ts). */
  readonly kind: PlannedProcess["kind"];
  /** 0 for the first instance, 1 for the second, ... */
  readonly instance: number;
}

/**
 * A gateway instance's gRPC (h2c) and admin ports beside its public `port`: GATEWAY_GRPC_PORT
 * (default 8081) and GATEWAY_ADMIN_PORT (default the public port + 1000), + 100 per instance.
 */
function gatewayPorts(port: number, instance: number): Record<string, string> {
  const step = instance * INSTANCE_PORT_STEP;
  const grpc = Number(process.env["GATEWAY_GRPC_PORT"]?.trim() || String(DEFAULT_GATEWAY_GRPC_PORT));
  const adminBase = process.env["GATEWAY_ADMIN_PORT"]?.trim();
  const admin = adminBase ? Number(adminBase) + step : port + METRICS_PORT_OFFSET;
  return { GATEWAY_GRPC_PORT: String(grpc + step), GATEWAY_ADMIN_PORT: String(admin) };
}

/** One nats-server: the only one, or a node of the cluster. */
interface NatsSlot {
  /** `nats-server`, or `nats-server n2` in a cluster. */
  readonly label: string;
  /** `n1`, `n2`, ... in a cluster. */
  readonly node: string | undefined;
  readonly port: number;
  readonly httpPort: number;
  readonly logFile: string;
  /** Starts it (again) on its ports, configuration and store. */
  readonly launch: () => Promise<RunningNatsServer>;
  server: RunningNatsServer | undefined;
  restarts: Restarts;
}

/** The nats-servers: one, or the nodes of the cluster. */
let natsSlots: NatsSlot[] = [];
/** How many copies of every stream and bucket the platform asks for. */
let natsReplicas = 1;
const services: Service[] = [];
let stopping = false;
let stopTimeoutMs = 10_000;
let restartPolicy: RestartPolicy = { minMs: 500, maxMs: 10_000, resetMs: 20_000 };
let pidFile: string | undefined;

/** Writes <RUN_DIR>/pids.json: the process ids of every child, for tools (make chaos) and people. */
function writePidFile(): void {
  if (!pidFile || stopping) return;
  const file = pidFile;
  const instances: Record<string, unknown> = {};
  for (const s of services) {
    instances[s.name] = {
      service: s.name.replace(/#\d+$/, ""),
      pid: s.child.hasExited() ? null : (commandPidOf(s.child) ?? null),
      pgid: s.child.hasExited() ? null : s.child.pid,
      address: s.address ?? null,
      restarts: s.restarts.count,
    };
  }
  const natsEntry = (slot: NatsSlot) => {
    const server = slot.server;
    const url = `nats://${HOST}:${slot.port}`;
    return server && !server.process.hasExited()
      ? { node: slot.node ?? null, pid: server.serverPid ?? commandPidOf(server.process) ?? null, pgid: server.process.pid, url, monitorUrl: server.monitorUrl ?? null, restarts: slot.restarts.count }
      : { node: slot.node ?? null, pid: null, pgid: null, url, monitorUrl: `http://${HOST}:${slot.httpPort}`, restarts: slot.restarts.count };
  };
  const content = {
    run: process.pid,
    updated: new Date().toISOString(),
    // The first (or only) nats-server; every node of a cluster under natsNodes.
    nats: natsSlots[0] ? natsEntry(natsSlots[0]) : { pid: null, pgid: null, url: null, restarts: 0 },
    natsNodes: natsSlots.map(natsEntry),
    instances,
  };
  try {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(content, null, 2) + "\n");
    renameSync(temp, file);
  } catch (error) {
    complain(`could not write ${shown(file)}: ${(error as Error).message}`);
  }
}

/** Writes the pid file now and again shortly (a child's own pid shows once its wrapper has started it). */
function refreshPidFile(): void {
  writePidFile();
  setTimeout(writePidFile, 300).unref();
  setTimeout(writePidFile, 1_500).unref();
}

async function shutdown(exitCode: number): Promise<never> {
  if (stopping) return new Promise<never>(() => {});
  stopping = true;
  for (const slot of natsSlots) clearTimeout(slot.restarts.timer);
  for (const s of services) clearTimeout(s.restarts.timer);
  const running = services.filter((s) => !s.child.hasExited());
  if (running.length > 0) {
    say(`stopping ${running.map((s) => s.name).join(", ")} ...`);
    await Promise.all(
      running.map(async (s) => {
        const exit = await s.child.stop({ timeoutMs: stopTimeoutMs });
        if (exit.signal === "SIGKILL") complain(`${s.name} did not stop within ${stopTimeoutMs} ms and was killed`);
      }),
    );
  }
  const runningNats = natsSlots.filter((slot) => slot.server && !slot.server.process.hasExited());
  if (runningNats.length > 0) {
    say(`stopping ${runningNats.length > 1 ? `${runningNats.length} nats-servers` : runningNats[0]!.label} ...`);
    await Promise.all(
      runningNats.map(async (slot) => {
        const exit = await slot.server!.stop({ timeoutMs: stopTimeoutMs });
        if (exit.signal === "SIGKILL") complain(`${slot.label} did not stop within ${stopTimeoutMs} ms and was killed`);
      }),
    );
  }
  if (pidFile) rmSync(pidFile, { force: true });
  say(exitCode === 0 ? "stopped" : `stopped (exit status ${exitCode})`);
  process.exit(exitCode);
}

function killEverything(): void {
  for (const s of services) s.child.kill();
  for (const slot of natsSlots) slot.server?.process.kill();
  if (pidFile) rmSync(pidFile, { force: true });
}

function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    complain(`${signal} again: killing everything`);
    killEverything();
    process.exit(130);
  }
  process.stdout.write("\n");
  say(`${signal}: stopping (press Ctrl-C again to kill everything at once)`);
  void shutdown(0);
}

function clock(at: number): string {
  return new Date(at).toISOString().slice(11, 23);
}

/** True for an instance of the gateway (`gateway`, `gateway#2`, ...). */
function isGateway(s: Service): boolean {
  return s.name.replace(/#\d+$/, "") === "gateway";
}

/** Asks an instance for its health until SERVING (gRPC health, or the gateway's /healthz). */
async function waitUntilServing(s: Service, timeoutMs: number, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; last: string }> {
  if (!s.address) return { ok: true, last: "n/a" };
  return isGateway(s)
    ? waitForHttp(`http://${s.address}/healthz`, timeoutMs)
    : waitForHealth(s.address, { timeoutMs, intervalMs: 200, env });
}

/** Watches one process of an instance; when it exits on its own, starts another after a back-off. */
function superviseInstance(s: Service, child: SupervisedChild, env: NodeJS.ProcessEnv, readyTimeoutMs: number): void {
  void child.exited.then((exit) => {
    if (stopping || s.child !== child) return;
    const now = Date.now();
    const ranMs = now - s.restarts.startedAt;
    const delay = nextRestartDelay(restartPolicy, s.restarts, now);
    s.health = "restarting";
    complain(
      `${s.name} (pid ${child.pid}) exited unexpectedly at ${clock(now)} (${describeExit(exit)}) after ${(ranMs / 1000).toFixed(1)} s; ` +
        `restarting it in ${(delay / 1000).toFixed(1)} s, at ${clock(now + delay)} (restart ${s.restarts.count + 1}); see ${shown(s.logFile)}`,
    );
    writePidFile();
    s.restarts.timer = setTimeout(() => {
      if (stopping) return;
      s.restarts.count++;
      s.restarts.startedAt = Date.now();
      const next = s.spawn();
      s.child = next;
      superviseInstance(s, next, env, readyTimeoutMs);
      say(`${s.name} restarted (pid ${next.pid}, restart ${s.restarts.count})`);
      refreshPidFile();
      void waitUntilServing(s, readyTimeoutMs, env).then((result) => {
        if (stopping || s.child !== next || next.hasExited()) return;
        s.health = result.ok ? "SERVING" : `not ready (${result.last})`;
        if (result.ok) say(`${s.name} is SERVING again (pid ${next.pid})`);
        else complain(`${s.name} is not SERVING ${readyTimeoutMs} ms after its restart: ${result.last}; see ${shown(s.logFile)}`);
      });
    }, delay);
  });
}

function printTable(streams: EnsureStreamResult[], natsDir: string, logDir: string, servicesDir: string): void {
  if (natsSlots.length === 0) return;
  const rows: [string, string][] =
    natsSlots.length === 1
      ? [
          ["NATS", `nats://${HOST}:${natsSlots[0]!.port}   (JetStream store: ${shown(natsDir)})`],
          ["monitoring", `http://${HOST}:${natsSlots[0]!.httpPort}`],
        ]
      : natsSlots.map((slot, i) => [
          i === 0 ? "NATS" : "",
          `${slot.node}  nats://${HOST}:${slot.port}   monitoring http://${HOST}:${slot.httpPort}   store ${shown(path.join(natsDir, slot.node ?? ""))}   log ${shown(slot.logFile)}`,
        ]);
  if (natsSlots.length > 1) {
    rows.push(["", `a ${natsSlots.length}-node JetStream cluster; every stream and bucket at ${natsReplicas} replicas or more; each node: curl -s 'http://${HOST}:${natsSlots[0]!.httpPort}/jsz?accounts=true&streams=true&config=true'`]);
  }
  rows.push(
    ["streams", `${streams.map((s) => s.name).join(", ")} (${natsReplicas} replica${natsReplicas > 1 ? "s" : ""} asked)`],
    ["logs", shown(logDir)],
  );
  if (pidFile) rows.push(["pids", shown(pidFile)]);
  if (services.length === 0) {
    rows.push(["services", `none yet (a service is ${shown(servicesDir)}/<name>/main.ts)`]);
  } else {
    const width = Math.max(...services.map((s) => s.name.length));
    const addressWidth = Math.max(...services.map((s) => (s.address ?? "-").length));
    services.forEach((s, i) => {
      const health = (s.health ?? "n/a").padEnd(11);
      rows.push([
        i === 0 ? "services" : "",
        `${s.name.padEnd(width)}   ${(s.address ?? "-").padEnd(addressWidth)}   ${health}   pid ${s.child.pid}   log ${shown(s.logFile)}` +
          (s.metricsUrl ? `   metrics ${s.metricsUrl}` : ""),
      ]);
    });
  }
  const lines = ["", "Drone delivery platform is running", ...rows.map(([k, v]) => `  ${k.padEnd(12)} ${v}`)];
  lines.push("", "Press Ctrl-C to stop.", "");
  process.stdout.write(lines.join("\n") + "\n");
}

/** Polls an HTTP health URL until it answers 200. */
async function waitForHttp(url: string, timeoutMs: number): Promise<{ ok: boolean; last: string }> {
  const until = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return { ok: true, last: "SERVING" };
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() >= until || stopping) return { ok: false, last };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Where to point a client, with a ready token for the demo account: printed once the gateway
 * answers /healthz, however long that takes (a slow first start included).
 */
async function printGatewayHowTo(secret: string | undefined): Promise<void> {
  const gateways = services.filter((s) => isGateway(s) && s.address);
  const gateway = gateways[0];
  if (!gateway?.address || !secret) return;
  if (gateway.health !== "SERVING") {
    say("the token and curl commands follow once the gateway is SERVING");
    while (!stopping) {
      const result = await waitForHttp(`http://${gateway.address}/healthz`, 60_000);
      if (result.ok) break;
    }
    if (stopping) return;
    gateway.health = "SERVING";
    say("gateway is SERVING");
  }
  const token = await mintToken("acct-demo", secret, 12 * 3600);
  // An operator (role `operator`): the fleet API under /v1/fleet/ and the console's operator view.
  const operatorToken = await mintToken("acct-operator", secret, 12 * 3600, ["operator"]);
  const grpcPort = Number(process.env["GATEWAY_GRPC_PORT"]?.trim() || String(DEFAULT_GATEWAY_GRPC_PORT));
  const url = `http://${gateway.address}`;
  const lines = [
    "",
    `Public API (REST + JSON, Connect, gRPC-Web): ${url}    gRPC (h2c): ${HOST}:${grpcPort}`,
    ...(gateways.length > 1
      ? [
          `${gateways.length} gateways serve the same API (one rate limit per client across them); point clients at any of them:`,
          ...gateways.map((g, i) => `  ${g.name}: http://${g.address}    gRPC (h2c): ${HOST}:${grpcPort + i * INSTANCE_PORT_STEP}`),
        ]
      : []),
    "A token for the demo account acct-demo (12 h; more with: npm run -s mint-token <account>):",
    `  export TOKEN=${token}`,
    "Schedule a delivery, read its status, follow its events until it is delivered (REST + JSON):",
    `  ID=$(curl -s -X POST ${url}/v1/deliveryrequests -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
    `    -d '{"pickup":{"latitude":47.61,"longitude":-122.33},"dropoff":{"latitude":47.62,"longitude":-122.35},` +
      // A deadline six hours after the command runs, and a parcel of its own each time (a parcel
      // travels in one open delivery at a time).
      `"deadline":"'"$(date -u -d '+6 hours' +%FT%TZ)"'","packageInfo":{"packageId":"pkg-'"$RANDOM$RANDOM"'","size":"PACKAGE_SIZE_SMALL","weightKg":1.5}}' \\`,
    `    | sed -E 's/.*"deliveryId":"([^"]+)".*/\\1/'); echo $ID`,
    `  curl -s ${url}/v1/deliveries/$ID/status -H "authorization: Bearer $TOKEN"`,
    `  curl -sN ${url}/v1/deliveries/$ID/events -H "authorization: Bearer $TOKEN"`,
    "An operator token (account acct-operator, role operator; more with: npm run -s mint-token -- --role operator <account>):",
    `  export OPERATOR_TOKEN=${operatorToken}`,
    "The fleet (operators only; a customer token answers 403): drones, live positions (SSE), summary, every account's deliveries:",
    `  curl -s ${url}/v1/fleet/drones -H "authorization: Bearer $OPERATOR_TOKEN"`,
    `  curl -sN ${url}/v1/fleet/events -H "authorization: Bearer $OPERATOR_TOKEN"`,
    `  curl -s ${url}/v1/fleet/summary -H "authorization: Bearer $OPERATOR_TOKEN"`,
    `  curl -s '${url}/v1/fleet/deliveries?stage=DELIVERY_STAGE_FAILED' -H "authorization: Bearer $OPERATOR_TOKEN"`,
    "The web console, signed in (open in a browser):",
    `  as the demo customer: ${url}/#token=${token}`,
    `  as an operator:       ${url}/#token=${operatorToken}`,
    `Version 2 (several parcels, typed ETAs) is served beside it under ${url}/v2/deliveries; the REST surface: ${url}/openapi.json`,
    "The same API speaks Connect and gRPC-Web at this URL (e.g. POST /dronedelivery.api.v1.DeliveryApiService/GetDeliveryStatus).",
    "",
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

/** The client URL of every nats-server, comma-separated (NATS_URL). */
function natsUrls(): string {
  return natsSlots.map((slot) => `nats://${HOST}:${slot.port}`).join(",");
}

/**
 * Creates the streams, or raises their replicas, as the admin user; reports what it kept or could
 * not apply. A cluster that has just started elects a leader for each stream after its meta
 * leader: until then requests time out, so it tries again for up to `timeoutMs`.
 */
async function setUpStreams(natsAuth: NatsAuth | undefined, timeoutMs = 60_000): Promise<EnsureStreamResult[]> {
  const until = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats({ url: natsUrls(), name: "run", maxReconnectAttempts: 0, ...natsAuth?.connectOptionsOf("admin") });
      const jsm = await nc.jetstreamManager();
      const results = await ensureStreams(jsm, { replicas: natsReplicas, warn: (message) => complain(message) });
      // Every other stream (the services' KV buckets) and every durable consumer answering too:
      // after a cluster restart each elects its leader again, and a service that starts before
      // that fails its set-up (503) and is restarted.
      for await (const name of jsm.streams.names()) {
        await jsm.streams.info(name);
        const durables: string[] = [];
        for await (const consumer of jsm.consumers.list(name)) if (consumer.config.durable_name) durables.push(consumer.name);
        for (const durable of durables) await jsm.consumers.info(name, durable);
      }
      for (const r of results) {
        for (const k of r.kept) say(`stream ${r.name}: ${k.field} stays ${k.current} (asked ${k.wanted}): the platform never lowers it`);
      }
      return results;
    } catch (error) {
      if (stopping || Date.now() >= until) throw error;
      if (attempt === 1) say(`streams not ready yet (${(error as Error).message}); trying again`);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await drainQuietly(nc);
    }
  }
}

/**
 * On replicated streams, checks that the servers enforce revision-checked KV updates when writers
 * race (probeRevisionChecks): the platform's optimistic concurrency depends on it, and nats-server
 * 2.9.10 (Debian bookworm's package) does not enforce them on a cluster. Says so loudly; never fatal.
 */
async function checkRevisionChecks(natsAuth: NatsAuth | undefined): Promise<void> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connectNats({ url: natsUrls(), name: "run-probe", maxReconnectAttempts: 0, ...natsAuth?.connectOptionsOf("admin") });
    const probe = await probeRevisionChecks(nc, { replicas: natsReplicas });
    if (probe.enforced) {
      say(`revision-checked KV updates are enforced at ${natsReplicas} replicas (${probe.rounds} racing rounds, one winner each)`);
    } else {
      complain(
        `WARNING: nats-server ${nc.info?.version ?? "?"} does not enforce revision-checked KV updates at ${natsReplicas} replicas: ` +
          `in ${probe.violations} of ${probe.rounds} rounds more than one update made against the same revision succeeded. ` +
          "The services' optimistic concurrency (drone claims, workflow and delivery records) is not safe on this cluster " +
          "when writers race; run a nats-server release that enforces it (2.10: unset NATS_SERVER_BIN and make run fetches one, " +
            "or NATS_SERVER_BIN=$(scripts/nats-server-trixie.sh)), " +
          "or NATS_REPLICAS=1 (README, NATS JetStream)",
      );
    }
  } catch (error) {
    complain(`could not check revision-checked updates: ${(error as Error).message}`);
  } finally {
    await drainQuietly(nc);
  }
}

/** Watches one nats-server; when it dies, starts it again on the same ports, configuration and store. */
function superviseNats(slot: NatsSlot, server: RunningNatsServer, natsAuth: NatsAuth | undefined): void {
  void server.exited.then((exit) => {
    if (stopping || slot.server !== server) return;
    complain(`${slot.label} exited unexpectedly at ${clock(Date.now())} (${describeExit(exit)}); last lines of ${shown(slot.logFile)}:`);
    process.stderr.write(server.logTail(10) + "\n");
    writePidFile();
    scheduleNatsRestart(slot, natsAuth);
  });
}

function scheduleNatsRestart(slot: NatsSlot, natsAuth: NatsAuth | undefined): void {
  const now = Date.now();
  const delay = nextRestartDelay(restartPolicy, slot.restarts, now);
  const others = natsSlots.length > 1 ? "; meanwhile the services use the other nodes" : "; the services reconnect by themselves";
  complain(
    `restarting ${slot.label} in ${(delay / 1000).toFixed(1)} s, at ${clock(now + delay)} (restart ${slot.restarts.count + 1}), ` +
      `on ${HOST}:${slot.port} with the same store and users${others}`,
  );
  slot.restarts.timer = setTimeout(() => {
    if (stopping) return;
    slot.restarts.count++;
    slot.restarts.startedAt = Date.now();
    slot.launch().then(
      async (server) => {
        if (stopping) {
          await server.stop({ timeoutMs: stopTimeoutMs });
          return;
        }
        slot.server = server;
        superviseNats(slot, server, natsAuth);
        say(`${slot.label} restarted (pid ${server.serverPid ?? server.process.pid}, restart ${slot.restarts.count}) on ${server.url}`);
        refreshPidFile();
        await setUpStreams(natsAuth).catch((error: unknown) => complain(`streams after the restart: ${(error as Error).message}`));
      },
      (error: unknown) => {
        if (stopping) return;
        complain(`${slot.label} did not start again: ${(error as Error).message.split("\n")[0]}`);
        scheduleNatsRestart(slot, natsAuth);
      },
    );
  }, delay);
}

/** nats-server's version as `--version` prints it (e.g. "nats-server: v2.9.10"), or undefined. */
function natsServerVersion(bin: string): [number, number] | undefined {
  const result = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const match = /v(\d+)\.(\d+)\./.exec(`${result.stdout ?? ""}${result.stderr ?? ""}`);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

/**
 * The nats-server for replicated streams. Releases before 2.10 (Debian bookworm's 2.9.10) do not
 * enforce revision-checked KV updates on a replicated stream when writers race, so when the
 * server found is older and NATS_SERVER_BIN does not name one, Debian trixie's nats-server 2.10 is
 * fetched once into <repository>/.run/nats-server-trixie (scripts/nats-server-trixie.sh: nothing
 * installed, system apt untouched) and used. NATS_SERVER_BIN always wins; if the fetch fails, the
 * server found is used and checkRevisionChecks warns.
 */
function clusterCapableNatsServerBin(): string {
  const found = resolveNatsServerBin();
  if (process.env["NATS_SERVER_BIN"]?.trim()) return found;
  const version = natsServerVersion(found);
  if (version && (version[0] > 2 || (version[0] === 2 && version[1] >= 10))) return found;
  const folder = path.join(repoRoot, ".run", "nats-server-trixie");
  const already = existsSync(path.join(folder, "root", "usr", "sbin", "nats-server"));
  say(
    `nats-server ${version ? version.join(".") : "(version unknown)"} at ${found} does not enforce revision-checked updates on replicated streams; ` +
      `${already ? "using" : "fetching"} Debian trixie's nats-server 2.10 (scripts/nats-server-trixie.sh; set NATS_SERVER_BIN to choose a server yourself)`,
  );
  const fetched = spawnSync("bash", [path.join(repoRoot, "scripts", "nats-server-trixie.sh"), folder], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 300_000,
  });
  const fetchedBin = fetched.stdout?.trim().split("\n").pop();
  if (fetched.status === 0 && fetchedBin && existsSync(fetchedBin)) {
    say(`using ${fetchedBin}`);
    return fetchedBin;
  }
  complain(`could not fetch nats-server 2.10 (status ${fetched.status ?? fetched.signal}); going on with ${found}`);
  return found;
}

async function main(): Promise<void> {
  const natsPort = intFromEnv("NATS_PORT", 4222, 1, 65535);
  const httpPort = intFromEnv("NATS_HTTP_PORT", 8222, 1, 65535);
  const clusterSize = intFromEnv("NATS_CLUSTER_SIZE", 1, 1, 5);
  const clusterPort = intFromEnv("NATS_CLUSTER_PORT", DEFAULT_NATS_CLUSTER_PORT, 1, 65535);
  natsReplicas = intFromEnv("NATS_REPLICAS", Math.min(clusterSize, 3), 1, 5);
  if (natsReplicas > clusterSize) {
    throw new ConfigError(
      `NATS_REPLICAS=${natsReplicas} needs at least ${natsReplicas} nats-servers, and NATS_CLUSTER_SIZE is ${clusterSize}: ` +
        `set NATS_CLUSTER_SIZE=${natsReplicas} (or more), or NATS_REPLICAS from 1 to ${clusterSize}`,
    );
  }
  stopTimeoutMs = intFromEnv("RUN_STOP_TIMEOUT_MS", 10_000, 100, 600_000);
  const restartMinMs = intFromEnv("RUN_RESTART_MIN_MS", 500, 10, 600_000);
  restartPolicy = {
    minMs: restartMinMs,
    maxMs: intFromEnv("RUN_RESTART_MAX_MS", 10_000, restartMinMs, 3_600_000),
    resetMs: intFromEnv("RUN_RESTART_RESET_MS", 20_000, 0, 3_600_000),
  };
  const runDir = path.resolve(repoRoot, process.env["RUN_DIR"]?.trim() || ".run");
  const servicesDir = path.resolve(repoRoot, process.env["RUN_SERVICES_DIR"]?.trim() || "services");
  const natsDir = path.join(runDir, "nats");
  const logDir = path.join(runDir, "logs");
  mkdirSync(natsDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  pidFile = path.join(runDir, "pids.json");
  const natsAuthDirectory = path.resolve(repoRoot, process.env["NATS_AUTH_DIR"]?.trim() || path.join(runDir, "nats-auth"));
  const natsAuth = natsAuthEnabled(process.env) ? await ensureNatsAuth(natsAuthDirectory) : undefined;

  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const bin = natsReplicas > 1 ? clusterCapableNatsServerBin() : resolveNatsServerBin();
  const newRestarts = (): Restarts => ({ failures: 0, count: 0, startedAt: Date.now() });
  let startAll = async (): Promise<RunningNatsServer[]> => [await natsSlots[0]!.launch()];
  if (clusterSize === 1) {
    const logFile = path.join(logDir, "nats-server.log");
    natsSlots = [
      {
        label: "nats-server",
        node: undefined,
        port: natsPort,
        httpPort,
        logFile,
        server: undefined,
        restarts: newRestarts(),
        launch: () =>
          launchNatsServer({
            bin,
            host: HOST,
            port: natsPort,
            httpPort,
            storeDir: natsDir,
            serverName: "drone-delivery-dev",
            logFile,
            onParentExit: "SIGTERM",
            ...(natsAuth ? { auth: natsAuth } : {}),
          }),
      },
    ];
  } else {
    const range = (base: number) => Array.from({ length: clusterSize }, (_, i) => base + i);
    const clusterOptions: NatsClusterOptions = {
      size: clusterSize,
      dir: natsDir,
      host: HOST,
      bin,
      clientPorts: range(natsPort),
      httpPorts: range(httpPort),
      routePorts: range(clusterPort),
      logFileOf: (name) => path.join(logDir, `nats-server-${name}.log`),
      onParentExit: "SIGTERM",
      ...(natsAuth ? { auth: natsAuth } : {}),
    };
    natsSlots = planNatsCluster(clusterOptions).map((node) => ({
      label: `nats-server ${node.name}`,
      node: node.name,
      port: node.port,
      httpPort: node.httpPort,
      logFile: clusterOptions.logFileOf!(node.name),
      server: undefined,
      restarts: newRestarts(),
      launch: () => launchNatsClusterNode(clusterOptions, node),
    }));
    // First start: every node at once (a JetStream cluster elects its meta leader once most nodes have met).
    startAll = () => launchNatsCluster(clusterOptions);
  }
  const portsTaken = (err: unknown) => {
    if (err instanceof NatsServerStartError && /address already in use/i.test(err.logTail)) {
      complain(err.message);
      complain(
        `a port of ${natsSlots.map((s) => `${s.port}, ${s.httpPort}`).join(", ")}${clusterSize > 1 ? ` or route ports from ${clusterPort}` : ""} ` +
          `on ${HOST} is already taken (by another nats-server? the Debian ` +
          "package runs one as a system service: sudo systemctl disable --now nats-server); " +
          `choose others with NATS_PORT and NATS_HTTP_PORT${clusterSize > 1 ? " and NATS_CLUSTER_PORT" : ""}`,
      );
      return new ConfigError("nats-server could not start");
    }
    return err;
  };
  say(
    clusterSize === 1
      ? `starting nats-server on ${HOST}:${natsPort} (log: ${shown(natsSlots[0]!.logFile)})`
      : `starting a ${clusterSize}-node JetStream cluster: ${natsSlots.map((s) => `${s.node} ${HOST}:${s.port}`).join(", ")} ` +
          `(routes from ${HOST}:${clusterPort}, stores in ${shown(natsDir)}/n1..n${clusterSize}, logs ${shown(logDir)}/nats-server-n<i>.log); ` +
          `streams and buckets at ${natsReplicas} replicas`,
  );
  try {
    const started = await startAll();
    started.forEach((server, i) => (natsSlots[i]!.server = server));
  } catch (err) {
    throw portsTaken(err);
  }
  if (stopping) return;
  for (const slot of natsSlots) {
    slot.restarts.startedAt = Date.now();
    superviseNats(slot, slot.server!, natsAuth);
  }

  say(
    natsAuth
      ? `NATS authorization on: one user per service, credentials in ${shown(natsAuthDirectory)}`
      : "NATS_AUTH=off: every NATS connection may do everything (debugging only)",
  );
  const streams = await setUpStreams(natsAuth);
  const summary = (["created", "updated", "unchanged"] as const)
    .map((action) => [action, streams.filter((s) => s.action === action).map((s) => s.name)] as const)
    .filter(([, names]) => names.length > 0)
    .map(([action, names]) => `${action}: ${names.join(", ")}`)
    .join("; ");
  say(`streams ${summary}`);
  if (natsReplicas > 1) await checkRevisionChecks(natsAuth);
  if (stopping) return;

  // Every folder with a main.ts, and the public gateway (gateway/main.ts beside services/).
  const gatewayMain = path.join(servicesDir, "..", "gateway", "main.ts");
  const found = runPlan(PLATFORM_REGISTRY, discoverServices(servicesDir), existsSync(gatewayMain) ? gatewayMain : undefined);
  if (found.length === 0) say(`no services to start (none of ${shown(servicesDir)}/<name>/main.ts exists yet)`);
  // Mutual TLS between the services (on unless INTERNAL_TLS=off): the development CA and every
  // identity's certificate are made once here, before the services start.
  const pkiDirectory = process.env["INTERNAL_PKI_DIR"]?.trim() || path.join(runDir, "pki");
  // The gateway's development signing secret lives in the run directory too (unless
  // GATEWAY_JWT_SECRET or GATEWAY_DEV_SECRET_FILE say otherwise); made here so that the token
  // printed below is signed with the secret the gateway checks.
  const devSecretFile = path.resolve(repoRoot, process.env["GATEWAY_DEV_SECRET_FILE"]?.trim() || path.join(runDir, "gateway-dev-secret"));
  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    NATS_URL: natsUrls(),
    NATS_REPLICAS: String(natsReplicas),
    NATS_AUTH_DIR: natsAuthDirectory,
    INTERNAL_PKI_DIR: pkiDirectory,
    GATEWAY_DEV_SECRET_FILE: devSecretFile,
  };
  const gatewaySecret = existsSync(gatewayMain)
    ? process.env["GATEWAY_JWT_SECRET"]?.trim() || loadOrCreateDevSecret(devSecretFile)
    : undefined;
  if (tlsEnabled(baseEnv)) {
    const pki = await ensureDevPki(pkiDirectory, PKI_IDENTITIES);
    const made = pki.changes.length > 0 ? `, ${pki.changes.length} made or renewed` : "";
    say(`mutual TLS between services: development CA and certificates in ${shown(pkiDirectory)}${made}`);
  } else {
    say("INTERNAL_TLS=off: services talk plaintext and do not check callers (debugging only)");
  }

  // Every instance of every service, with its ports; callers get the list of a service's instances.
  const plans: InstancePlan[] = [];
  for (const { name, main: mainFile, kind, port: defaultPort } of found) {
    const portVariable = `${envPrefix(name)}PORT`;
    const basePort = Number(process.env[portVariable]?.trim() || String(defaultPort ?? 0));
    const count = kind !== "unregistered" ? intFromEnv(`${envPrefix(name)}INSTANCES`, 1, 1, 9) : 1;
    for (let i = 0; i < count; i++) {
      const port = basePort > 0 ? basePort + i * INSTANCE_PORT_STEP : undefined;
      plans.push({ name, label: count > 1 ? `${name}#${i + 1}` : name, main: mainFile, port, kind, instance: i });
    }
  }
  const addresses: Record<string, string> = {};
  for (const name of new Set(plans.filter((p) => p.kind === "service" && p.port).map((p) => p.name))) {
    const variable = `${envPrefix(name)}ADDRESS`;
    addresses[variable] =
      process.env[variable]?.trim() ||
      plans
        .filter((p) => p.name === name)
        .map((p) => `${HOST}:${p.port}`)
        .join(",");
  }

  const readyTimeoutMs = intFromEnv("RUN_READY_TIMEOUT_MS", 30_000, 100, 600_000);
  const width = Math.max(0, ...plans.map((p) => p.label.length));
  for (const plan of plans) {
    const { name, label, main: mainFile, port } = plan;
    const logFile = path.join(logDir, `${label.replace("#", "-")}.log`);
    const prefix = `[${label}]`.padEnd(width + 2) + " ";
    const own: Record<string, string> = port
      ? {
          [`${envPrefix(name)}PORT`]: String(port),
          ...(plan.kind === "service" ? { [`${envPrefix(name)}METRICS_PORT`]: String(port + METRICS_PORT_OFFSET) } : {}),
          ...(name === "gateway" ? gatewayPorts(port, plan.instance) : {}),
        }
      : {};
    const spawn = (): SupervisedChild =>
      startSupervisedChild({
        name: label,
        command: process.execPath,
        args: nodeArgsFor(mainFile),
        cwd: repoRoot,
        env: { ...baseEnv, ...addresses, SERVICE_NAME: name, ...own },
        logFile,
        onLine: (line) => process.stdout.write(prefix + line + "\n"),
        onParentExit: "SIGTERM",
        orphanStopTimeoutMs: stopTimeoutMs,
      });
    const service: Service = {
      name: label,
      main: mainFile,
      logFile,
      child: spawn(),
      spawn,
      restarts: { failures: 0, count: 0, startedAt: Date.now() },
      ...(port ? { address: `${HOST}:${port}` } : {}),
      ...(port && plan.kind === "service" ? { metricsUrl: `http://${HOST}:${port + METRICS_PORT_OFFSET}/metrics` } : {}),
      ...(name === "gateway" && port ? { metricsUrl: `http://${HOST}:${gatewayPorts(port, plan.instance)["GATEWAY_ADMIN_PORT"]}/metrics` } : {}),
    };
    services.push(service);
    superviseInstance(service, service.child, baseEnv, readyTimeoutMs);
  }
  refreshPidFile();
  if (services.length > 0) say(`started ${services.map((s) => s.name).join(", ")}; waiting until they are SERVING`);
  await Promise.all(
    services.map(async (s) => {
      if (!s.address) return;
      const result = await waitUntilServing(s, readyTimeoutMs, baseEnv);
      if (s.health === "restarting") return;
      s.health = result.ok ? "SERVING" : `not ready (${result.last})`;
      if (result.ok) return;
      complain(`${s.name} is not SERVING after ${readyTimeoutMs} ms: ${result.last}; see ${shown(s.logFile)}`);
      // Keep asking in the background, and say when it is (the gateway's turn is printGatewayHowTo).
      if (isGateway(s)) return;
      const child = s.child;
      void (async () => {
        while (!stopping && s.child === child) {
          if ((await waitUntilServing(s, 60_000, baseEnv)).ok) {
            if (stopping || s.child !== child) return;
            s.health = "SERVING";
            say(`${s.name} is SERVING`);
            return;
          }
        }
      })();
    }),
  );
  if (stopping) return;

  printTable(streams, natsDir, logDir, servicesDir);
  await printGatewayHowTo(gatewaySecret);

  if (flagFromEnv("RUN_EXIT_AFTER_READY")) {
    say("RUN_EXIT_AFTER_READY is set: stopping again");
    await shutdown(0);
  }
}

main().catch(async (err: unknown) => {
  if (err instanceof ConfigError || err instanceof NatsServerNotFoundError) complain(err.message);
  else complain(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  await shutdown(1);
});
