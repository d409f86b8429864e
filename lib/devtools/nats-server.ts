/**
 * Finding and launching a local nats-server with JetStream, for `make run` (scripts/run.ts) and the
 * test harness (test/harness/nats-server.ts). Services never start a server themselves.
 *
 * With `auth` (lib/nats/auth.ts) the server runs from a configuration file holding the JetStream
 * settings and the `authorization` block: one user per identity, each with its permissions.
 * Without it, it runs from command-line flags alone and anyone may connect and do anything.
 *
 * With `cluster` it is one node of a JetStream cluster (lib/devtools/nats-cluster.ts starts all of
 * them): the configuration file then also holds the `cluster` block (cluster name, route listen
 * address, the routes to every node) and the JetStream domain.
 */
import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { connect, type ConnectionOptions } from "nats";
import type { NatsAuth, NatsCredentials } from "../nats/auth.js";
import { ADMIN_IDENTITY } from "../nats/permissions.js";
import { writeFileAtomic } from "../security/file-lock.js";
import { startSupervisedChild, type ChildExit, type SupervisedChild } from "./supervised-child.js";

/** Where nats-server is looked for after PATH (Debian puts it in /usr/sbin, often not on PATH). */
export const NATS_SERVER_FALLBACK_PATHS: readonly string[] = ["/usr/sbin/nats-server", "/usr/bin/nats-server"];

export const NATS_SERVER_INSTALL_HINT =
  "Install nats-server 2.9 or later (JetStream is built in): run scripts/ensure-nats-server.sh, " +
  "or install the Debian/Ubuntu package `nats-server`, or a release from " +
  "https://github.com/nats-io/nats-server/releases, or set NATS_SERVER_BIN to a nats-server binary.";

export class NatsServerNotFoundError extends Error {
  override name = "NatsServerNotFoundError";
}

/** Raised when a nats-server fails to start; `logTail` holds the end of its output. */
export class NatsServerStartError extends Error {
  override name = "NatsServerStartError";
  constructor(
    message: string,
    readonly logTail: string,
  ) {
    super(logTail ? `${message}\n--- nats-server output (last lines) ---\n${logTail}` : message);
  }
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(command: string, searchPath: string | undefined): string | undefined {
  for (const dir of (searchPath ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The nats-server binary to run: `NATS_SERVER_BIN` when set (a path, or a command name looked up
 * on PATH; no fallback then), else nats-server on PATH, else /usr/sbin/nats-server, else
 * /usr/bin/nats-server. Same order as scripts/nats-server-path.sh. Throws NatsServerNotFoundError.
 */
export function resolveNatsServerBin(env: NodeJS.ProcessEnv = process.env): string {
  const override = env["NATS_SERVER_BIN"]?.trim();
  if (override) {
    const candidate = override.includes("/") ? path.resolve(override) : findOnPath(override, env["PATH"]);
    if (candidate && isExecutableFile(candidate)) return candidate;
    throw new NatsServerNotFoundError(`NATS_SERVER_BIN=${override} is not an executable file. ${NATS_SERVER_INSTALL_HINT}`);
  }
  const found = findOnPath("nats-server", env["PATH"]) ?? NATS_SERVER_FALLBACK_PATHS.find(isExecutableFile);
  if (found) return found;
  throw new NatsServerNotFoundError(`nats-server was not found on PATH, in /usr/sbin or in /usr/bin. ${NATS_SERVER_INSTALL_HINT}`);
}

export interface NatsServerLaunchOptions {
  /** JetStream store directory (`-sd`). */
  storeDir: string;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Client port; -1 lets the server pick a free one. Default -1. */
  port?: number;
  /** HTTP monitoring port; -1 picks a free one; undefined turns monitoring off. */
  httpPort?: number;
  /** Binary to run. Default resolveNatsServerBin(). */
  bin?: string;
  /** Server name (`-n`). */
  serverName?: string;
  /** Extra command-line arguments. */
  extraArgs?: readonly string[];
  /** Append the server's log to this file. */
  logFile?: string;
  /** Called with every log line the server writes. */
  onLogLine?: (line: string) => void;
  /** How long to wait for the server to accept connections with JetStream ready. Default 20000 ms. */
  readyTimeoutMs?: number;
  /** See SupervisedChildOptions.orphanCleanupDir. */
  orphanCleanupDir?: string;
  /** See SupervisedChildOptions.onParentExit. Default "SIGTERM". */
  onParentExit?: "SIGTERM" | "SIGKILL";
  /** See SupervisedChildOptions.keepParentAlive. Default true. */
  keepParentAlive?: boolean;
  /**
   * Users and permissions (ensureNatsAuth): the server then requires credentials, and runs from a
   * configuration file. Default: no authorization.
   */
  auth?: NatsAuth;
  /**
   * Where the configuration file is written when `auth` or `cluster` is given. Default
   * `<auth.dir>/nats-server.conf` with auth, else `<storeDir>.conf`; the nodes of one cluster need
   * one each.
   */
  configFile?: string;
  /** Run as one node of a JetStream cluster. */
  cluster?: NatsClusterMembership;
}

/** A node's place in a JetStream cluster (the `cluster` block of its configuration). */
export interface NatsClusterMembership {
  /** Cluster name, the same on every node. */
  name: string;
  /** Port the node listens on for routes from the other nodes (on `host`). */
  routePort: number;
  /** Route URLs of every node of the cluster (its own may be included; nats-server skips it). */
  routes: readonly string[];
  /** JetStream domain of the cluster. Default none. */
  jetstreamDomain?: string;
}

export interface RunningNatsServer {
  /** Client URL, e.g. nats://127.0.0.1:4222. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** HTTP monitoring port and URL, when monitoring is on. */
  readonly httpPort: number | undefined;
  readonly monitorUrl: string | undefined;
  readonly storeDir: string;
  /** The configuration file the server runs from (with `auth`), else undefined. */
  readonly configFile: string | undefined;
  /** The users and permissions it was started with, else undefined. */
  readonly auth: NatsAuth | undefined;
  /** Process id of nats-server itself (not of its supervising wrapper). */
  readonly serverPid: number | undefined;
  /** The supervised process (wrapper pid, exit promise). */
  readonly process: SupervisedChild;
  /** Resolves when the server has exited, for whatever reason. */
  readonly exited: Promise<ChildExit>;
  logTail(lines?: number): string;
  /**
   * Graceful shutdown (SIGINT, on which nats-server exits with status 0; it exits 1 on SIGTERM),
   * waits up to timeoutMs (default 10000), then SIGKILL. Idempotent.
   */
  stop(options?: { timeoutMs?: number }): Promise<ChildExit>;
}

const LISTEN_RE = /Listening for client connections on (\S+):(\d+)/;
const MONITOR_RE = /Starting http monitor on (\S+):(\d+)/;
const PID_RE = /^\[(\d+)\]/;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Succeeds once a client can connect and reach the JetStream API. */
async function probeJetStream(url: string, credentials: NatsCredentials | undefined): Promise<void> {
  const options: ConnectionOptions = { servers: url, reconnect: false, timeout: 2_000, name: "nats-server-readiness-probe" };
  const nc = await connect(credentials ? { ...options, user: credentials.user, pass: credentials.pass } : options);
  try {
    await nc.jetstreamManager({ timeout: 2_000 });
  } finally {
    await nc.close();
  }
}

/**
 * The configuration file of a server with authorization and/or clustering: JetStream with its
 * store directory (and domain in a cluster), the cluster block, and the users. Listening address,
 * client port, monitoring port and server name stay on the command line.
 */
export function natsServerConfigText(storeDir: string, auth: NatsAuth | undefined, cluster?: NatsClusterMembership, host = "127.0.0.1"): string {
  const lines = [
    "# nats-server configuration of the drone delivery platform (lib/devtools/nats-server.ts).",
    "# Client address, port and server name are given on the command line." + (auth ? " Holds passwords: keep it private." : ""),
    "jetstream {",
    `  store_dir: ${JSON.stringify(path.resolve(storeDir))}`,
    ...(cluster?.jetstreamDomain ? [`  domain: ${JSON.stringify(cluster.jetstreamDomain)}`] : []),
    "}",
  ];
  if (cluster) {
    lines.push(
      "",
      "# Routes between the nodes; they carry JetStream's RAFT replication. Loopback only, no route",
      "# credentials: another host would need `authorization` and TLS in this block.",
      "cluster {",
      `  name: ${JSON.stringify(cluster.name)}`,
      `  listen: ${JSON.stringify(`${host}:${cluster.routePort}`)}`,
      "  routes: [",
      ...cluster.routes.map((r) => `    ${JSON.stringify(r)}`),
      "  ]",
      "}",
    );
  }
  if (auth) lines.push("", auth.configText);
  return lines.join("\n") + "\n";
}

/**
 * Starts nats-server with JetStream and resolves once it accepts connections and JetStream answers.
 * Rejects with NatsServerStartError (carrying the server's last log lines) if it exits or does not
 * become ready in time; the process is stopped in that case.
 */
export async function launchNatsServer(options: NatsServerLaunchOptions): Promise<RunningNatsServer> {
  const bin = options.bin ?? resolveNatsServerBin();
  const host = options.host ?? "127.0.0.1";
  const args = ["-a", host, "-p", String(options.port ?? -1)];
  const auth = options.auth;
  let configFile: string | undefined;
  if (auth || options.cluster) {
    // JetStream settings then live in the file: nats-server refuses `-sd` next to a store_dir.
    configFile = path.resolve(options.configFile ?? (auth ? path.join(auth.dir, "nats-server.conf") : `${path.resolve(options.storeDir)}.conf`));
    await mkdir(path.dirname(configFile), { recursive: true });
    await writeFileAtomic(configFile, natsServerConfigText(options.storeDir, auth, options.cluster, host), 0o600);
    args.push("-c", configFile);
  } else {
    args.push("-js", "-sd", options.storeDir);
  }
  if (options.httpPort !== undefined) args.push("-m", String(options.httpPort));
  if (options.serverName) args.push("-n", options.serverName);
  args.push(...(options.extraArgs ?? []));

  let port: number | undefined;
  let httpPort: number | undefined;
  let serverPid: number | undefined;
  let announcedReady: () => void = () => {};
  const readyAnnounced = new Promise<void>((resolve) => {
    announcedReady = resolve;
  });

  const child = startSupervisedChild({
    name: "nats-server",
    command: bin,
    args,
    logFile: options.logFile,
    orphanCleanupDir: options.orphanCleanupDir,
    onParentExit: options.onParentExit ?? "SIGTERM",
    keepParentAlive: options.keepParentAlive ?? true,
    onLine: (line) => {
      if (serverPid === undefined) {
        const m = PID_RE.exec(line);
        if (m?.[1]) serverPid = Number(m[1]);
      }
      const listen = LISTEN_RE.exec(line);
      if (listen?.[2]) port = Number(listen[2]);
      const monitor = MONITOR_RE.exec(line);
      if (monitor?.[2]) httpPort = Number(monitor[2]);
      if (line.includes("Server is ready")) announcedReady();
      options.onLogLine?.(line);
    },
  });

  const fail = async (reason: string): Promise<never> => {
    await child.stop({ timeoutMs: 5_000 });
    throw new NatsServerStartError(`nats-server ${reason} (${bin} ${args.join(" ")})`, child.logTail());
  };

  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  const exitedEarly = child.exited.then((exit) => ({ exit }));
  const first = await Promise.race([
    readyAnnounced.then(() => "ready" as const),
    exitedEarly,
    delay(timeoutMs).then(() => "timeout" as const),
  ]);
  if (first === "timeout") return fail(`did not start within ${timeoutMs} ms`);
  if (first !== "ready") {
    const { code, signal } = first.exit;
    return fail(`exited during startup (${signal ? `signal ${signal}` : `status ${code}`})`);
  }
  if (port === undefined) return fail("did not report its client port");
  const url = `nats://${host}:${port}`;

  let lastError: unknown;
  for (;;) {
    if (child.hasExited()) return fail("exited during startup");
    try {
      await probeJetStream(url, auth?.credentialsOf(ADMIN_IDENTITY));
      break;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? lastError.message : String(lastError);
      return fail(`did not accept connections with JetStream within ${timeoutMs} ms (${why})`);
    }
    await delay(100);
  }

  const finalPort = port;
  const finalHttpPort = httpPort;
  return {
    url,
    host,
    port: finalPort,
    httpPort: finalHttpPort,
    monitorUrl: finalHttpPort !== undefined ? `http://${host}:${finalHttpPort}` : undefined,
    storeDir: options.storeDir,
    configFile,
    auth,
    serverPid,
    process: child,
    exited: child.exited,
    logTail: (lines?: number) => child.logTail(lines),
    stop: (stopOptions?: { timeoutMs?: number }) => child.stop({ timeoutMs: stopOptions?.timeoutMs ?? 10_000, signal: "SIGINT" }),
  };
}
