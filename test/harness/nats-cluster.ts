/**
 * A private JetStream cluster (three nats-servers by default) for one test file.
 *
 *   const cluster = await startNatsCluster();
 *   afterAll(() => cluster.stop());
 *
 * The nodes listen on loopback ports that were free when it started (client, monitoring and route
 * port each) and keep their stores in a fresh temporary directory (lib/devtools/nats-cluster.ts
 * lays them out). kill(i) SIGKILLs node i's nats-server; restart(i) starts it again on the same
 * ports and store, and it rejoins. stop() stops every node and removes the directory. As with
 * startNatsServer, nothing is left behind when the test process exits or is killed without
 * stopping it (lib/devtools/supervised-child.ts).
 */
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NatsConnection } from "nats";
import {
  clusterStreams,
  launchNatsCluster,
  launchNatsClusterNode,
  planNatsCluster,
  waitForJetStreamCluster,
  type NatsClusterNode,
  type NatsClusterOptions,
} from "../../lib/devtools/nats-cluster.js";
import type { RunningNatsServer } from "../../lib/devtools/nats-server.js";
import { ensureNatsAuth, type NatsAuth } from "../../lib/nats/auth.js";
import { connectNatsAs, type ConnectNatsAsOptions } from "../../lib/nats/connection.js";
import type { NatsIdentity } from "../../lib/nats/permissions.js";
import type { Env } from "../../lib/service/config.js";
import { killOnExit } from "./nats-server.js";
import { freePort } from "./ports.js";

export interface StartNatsClusterOptions {
  /** Number of nodes. Default 3. */
  size?: number;
  /** Users and permissions on every node. Default false. */
  auth?: boolean;
  /** How long the nodes get to form the cluster. Default 60000 ms (a loaded machine). */
  readyTimeoutMs?: number;
  /** How long stop() waits for a graceful shutdown of a node before SIGKILL. Default 10000 ms. */
  stopTimeoutMs?: number;
}

export interface TestNatsCluster {
  /** Every node's client URL, comma-separated (NATS_URL form). */
  readonly url: string;
  readonly nodes: readonly NatsClusterNode[];
  /** Process id of node i's nats-server, undefined while it is down. */
  pid(index: number): number | undefined;
  /** NATS_URL (all nodes) and NATS_AUTH / NATS_AUTH_DIR for a service. */
  readonly serviceEnv: Env;
  /** Connects to the cluster (all nodes) as an identity. */
  connectAs(identity: NatsIdentity, options?: ConnectNatsAsOptions): Promise<NatsConnection>;
  /** SIGKILLs node i's nats-server and waits until it has exited. */
  kill(index: number): Promise<void>;
  /** Starts node i again on its ports and store (after kill). */
  restart(index: number): Promise<void>;
  /** Waits until the cluster has a meta leader that sees every node as current. */
  waitForCluster(timeoutMs?: number): Promise<void>;
  /** The streams node i knows, with replicas and peer state (its /jsz). */
  streams(index: number): ReturnType<typeof clusterStreams>;
  /** The last log lines of every node. */
  logTail(lines?: number): string;
  /** Stops every node and removes the directory. Idempotent. */
  stop(): Promise<void>;
}


/** `count` distinct ports that were free a moment ago. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

export async function startNatsCluster(options: StartNatsClusterOptions = {}): Promise<TestNatsCluster> {
  const size = options.size ?? 3;
  const root = mkdtempSync(path.join(tmpdir(), "dd-nats-cluster-"));
  const servers: (RunningNatsServer | undefined)[] = Array.from({ length: size }, () => undefined);
  let stopped = false;
  const forgetRoot = killOnExit(root, () => servers.forEach((s) => s?.process.kill()));
  const removeRoot = async () => {
    forgetRoot();
    await rm(root, { recursive: true, force: true });
  };

  let auth: NatsAuth | undefined;
  let launchOptions: NatsClusterOptions;
  try {
    if (options.auth) auth = await ensureNatsAuth(path.join(root, "auth"));
    const ports = await freePorts(3 * size);
    launchOptions = {
      size,
      dir: path.join(root, "nats"),
      clientPorts: ports.slice(0, size),
      httpPorts: ports.slice(size, 2 * size),
      routePorts: ports.slice(2 * size),
      readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
      orphanCleanupDir: root,
      onParentExit: "SIGKILL",
      keepParentAlive: false,
      ...(auth ? { auth } : {}),
    };
    const started = await launchNatsCluster(launchOptions);
    started.forEach((s, i) => (servers[i] = s));
  } catch (err) {
    await removeRoot();
    throw err;
  }
  const nodes = planNatsCluster(launchOptions);
  const url = nodes.map((n) => n.url).join(",");
  const serviceEnv: Env = auth ? { NATS_URL: url, NATS_AUTH: "on", NATS_AUTH_DIR: auth.dir } : { NATS_URL: url, NATS_AUTH: "off" };
  const node = (index: number) => {
    const n = nodes[index];
    if (!n) throw new RangeError(`no node ${index} in a cluster of ${size}`);
    return n;
  };

  return {
    url,
    nodes,
    serviceEnv,
    pid: (index) => {
      const s = servers[index];
      return s && !s.process.hasExited() ? s.serverPid : undefined;
    },
    connectAs: (identity, connectOptions = {}) => connectNatsAs(identity, serviceEnv, { url, ...connectOptions }),
    async kill(index) {
      node(index);
      const server = servers[index];
      if (!server || server.process.hasExited()) return;
      if (server.serverPid) process.kill(server.serverPid, "SIGKILL");
      else server.process.kill();
      await server.exited;
    },
    async restart(index) {
      if (stopped) throw new Error("restart() after stop(): this cluster is gone");
      const server = servers[index];
      if (server && !server.process.hasExited()) await server.stop({ timeoutMs: options.stopTimeoutMs ?? 10_000 });
      servers[index] = await launchNatsClusterNode(launchOptions, node(index));
    },
    waitForCluster: (timeoutMs = 60_000) => waitForJetStreamCluster(nodes, { timeoutMs }),
    streams: (index) => clusterStreams(node(index).monitorUrl),
    logTail: (lines = 20) =>
      servers.map((s, i) => `--- ${node(i).name} ---\n${s?.logTail(lines) ?? "(not running)"}`).join("\n"),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(servers.map((s) => s?.stop({ timeoutMs: options.stopTimeoutMs ?? 10_000 })));
      servers.fill(undefined);
      await removeRoot();
    },
  };
}
