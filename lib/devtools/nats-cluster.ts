/**
 * A JetStream cluster of nats-servers on one host, for `make run` with NATS_CLUSTER_SIZE > 1
 * (scripts/run.ts) and the cluster tests (test/harness/nats-cluster.ts).
 *
 * Node i (1-based) is named `n<i>`, stores its JetStream data in `<dir>/n<i>` and runs from the
 * configuration file `<dir>/n<i>.conf`; it listens for clients on `clientPorts[i-1]`, for
 * monitoring on `httpPorts[i-1]` and for routes from the other nodes on `routePorts[i-1]`. Every
 * node lists the routes of all nodes, has the same cluster name and JetStream domain and, with
 * `auth`, the same users and permissions (lib/nats/auth.ts).
 *
 * The nodes start together: JetStream in a cluster elects a meta leader only once a majority of
 * the nodes has met, so a node alone never reports JetStream ready. A node that died is started
 * again with launchNatsClusterNode on its own ports, configuration and store, and rejoins.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { NatsConnection } from "nats";
import type { NatsAuth } from "../nats/auth.js";
import { launchNatsServer, NatsServerStartError, type RunningNatsServer } from "./nats-server.js";

/** Cluster name used when none is given. */
export const DEFAULT_NATS_CLUSTER_NAME = "dronedelivery";
/** JetStream domain of the cluster when none is given. */
export const DEFAULT_JETSTREAM_DOMAIN = "dronedelivery";
/** First route port of `make run` (NATS_CLUSTER_PORT); node i uses it + i - 1. */
export const DEFAULT_NATS_CLUSTER_PORT = 6222;

export interface NatsClusterOptions {
  /** Number of nodes (at least 1). */
  size: number;
  /** Folder of the nodes' stores (`n1`, `n2`, ...) and configuration files (`n1.conf`, ...). */
  dir: string;
  /** Client port of each node. */
  clientPorts: readonly number[];
  /** Monitoring port of each node. */
  httpPorts: readonly number[];
  /** Route port of each node. */
  routePorts: readonly number[];
  /** Address every node listens on. Default 127.0.0.1. */
  host?: string;
  /** Default DEFAULT_NATS_CLUSTER_NAME. */
  clusterName?: string;
  /** Default DEFAULT_JETSTREAM_DOMAIN. */
  jetstreamDomain?: string;
  /** nats-server binary. Default resolveNatsServerBin(). */
  bin?: string;
  /** Users and permissions, the same on every node. */
  auth?: NatsAuth;
  /** Log file of a node, by name (`n1`, ...). */
  logFileOf?: (name: string) => string;
  /** Called with every log line of a node. */
  onLogLine?: (name: string, line: string) => void;
  /** How long each node gets to be ready (JetStream answering). Default 30000 ms. */
  readyTimeoutMs?: number;
  /** See NatsServerLaunchOptions. */
  orphanCleanupDir?: string;
  onParentExit?: "SIGTERM" | "SIGKILL";
  keepParentAlive?: boolean;
}

/** What one node of the cluster is: enough to start it again the same way. */
export interface NatsClusterNode {
  /** `n1`, `n2`, ... */
  readonly name: string;
  /** 0-based position. */
  readonly index: number;
  readonly host: string;
  readonly port: number;
  readonly httpPort: number;
  readonly routePort: number;
  readonly storeDir: string;
  readonly configFile: string;
  /** nats://host:port */
  readonly url: string;
  /** http://host:httpPort */
  readonly monitorUrl: string;
}

/** The nodes a cluster of these options is made of. Throws on a bad size or missing ports. */
export function planNatsCluster(options: NatsClusterOptions): NatsClusterNode[] {
  const { size } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`a NATS cluster needs a whole number of nodes, got ${size}`);
  for (const [what, ports] of [
    ["clientPorts", options.clientPorts],
    ["httpPorts", options.httpPorts],
    ["routePorts", options.routePorts],
  ] as const) {
    if (ports.length < size) throw new RangeError(`${what}: ${size} ports needed, ${ports.length} given`);
  }
  const host = options.host ?? "127.0.0.1";
  const dir = path.resolve(options.dir);
  return Array.from({ length: size }, (_, index) => {
    const name = `n${index + 1}`;
    const port = options.clientPorts[index]!;
    const httpPort = options.httpPorts[index]!;
    return {
      name,
      index,
      host,
      port,
      httpPort,
      routePort: options.routePorts[index]!,
      storeDir: path.join(dir, name),
      configFile: path.join(dir, `${name}.conf`),
      url: `nats://${host}:${port}`,
      monitorUrl: `http://${host}:${httpPort}`,
    };
  });
}

/** Starts (or starts again) one node of the cluster. */
export async function launchNatsClusterNode(options: NatsClusterOptions, node: NatsClusterNode): Promise<RunningNatsServer> {
  const all = planNatsCluster(options);
  await mkdir(node.storeDir, { recursive: true });
  return launchNatsServer({
    host: node.host,
    port: node.port,
    httpPort: node.httpPort,
    storeDir: node.storeDir,
    serverName: node.name,
    configFile: node.configFile,
    cluster: {
      name: options.clusterName ?? DEFAULT_NATS_CLUSTER_NAME,
      routePort: node.routePort,
      routes: all.map((n) => `nats-route://${n.host}:${n.routePort}`),
      jetstreamDomain: options.jetstreamDomain ?? DEFAULT_JETSTREAM_DOMAIN,
    },
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
    ...(options.bin ? { bin: options.bin } : {}),
    ...(options.auth ? { auth: options.auth } : {}),
    ...(options.logFileOf ? { logFile: options.logFileOf(node.name) } : {}),
    ...(options.onLogLine ? { onLogLine: (line: string) => options.onLogLine?.(node.name, line) } : {}),
    ...(options.orphanCleanupDir ? { orphanCleanupDir: options.orphanCleanupDir } : {}),
    ...(options.onParentExit ? { onParentExit: options.onParentExit } : {}),
    ...(options.keepParentAlive !== undefined ? { keepParentAlive: options.keepParentAlive } : {}),
  });
}

/**
 * Starts every node at once and waits until each answers JetStream and the cluster has a meta
 * leader that sees every other node as current. On failure, stops the nodes it started and rethrows.
 */
export async function launchNatsCluster(options: NatsClusterOptions): Promise<RunningNatsServer[]> {
  const nodes = planNatsCluster(options);
  const started: RunningNatsServer[] = [];
  const results = await Promise.allSettled(
    nodes.map(async (node) => {
      const server = await launchNatsClusterNode(options, node);
      started.push(server);
      return server;
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(started.map((s) => s.stop({ timeoutMs: 5_000 })));
    throw failed.reason;
  }
  const servers = results.map((r) => (r as PromiseFulfilledResult<RunningNatsServer>).value);
  try {
    await waitForJetStreamCluster(nodes, { timeoutMs: options.readyTimeoutMs ?? 30_000 });
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop({ timeoutMs: 5_000 })));
    throw new NatsServerStartError((err as Error).message, servers.map((s) => s.logTail(5)).join("\n"));
  }
  return servers;
}

// ---------------------------------------------------------------------------------------------
// Monitoring (/jsz)

/** A peer of a RAFT group as /jsz shows it. */
export interface JszPeer {
  name: string;
  current: boolean;
  active?: number;
  lag?: number;
  offline?: boolean;
}

/** The parts of a node's /jsz answer the platform reads. */
export interface Jsz {
  server_id?: string;
  config?: { domain?: string };
  meta_cluster?: { name?: string; leader?: string; cluster_size?: number; replicas?: JszPeer[] };
  account_details?: {
    name: string;
    stream_detail?: {
      name: string;
      config?: { num_replicas?: number };
      state?: { messages: number; last_seq: number };
      cluster?: { name?: string; leader?: string; replicas?: JszPeer[] };
    }[];
  }[];
}

/** GET <monitorUrl>/jsz with the given query (e.g. "accounts=true&streams=true&config=true"). */
export async function fetchJsz(monitorUrl: string, query = ""): Promise<Jsz> {
  const response = await fetch(`${monitorUrl}/jsz${query ? `?${query}` : ""}`, { signal: AbortSignal.timeout(3_000) });
  if (!response.ok) throw new Error(`${monitorUrl}/jsz answered HTTP ${response.status}`);
  return (await response.json()) as Jsz;
}

/** The streams a node knows, with their replicas and the state of each peer. */
export async function clusterStreams(
  monitorUrl: string,
): Promise<{ name: string; replicas: number; messages: number; lastSeq: number; leader?: string; peers: JszPeer[] }[]> {
  const jsz = await fetchJsz(monitorUrl, "accounts=true&streams=true&config=true");
  return (jsz.account_details ?? []).flatMap((account) =>
    (account.stream_detail ?? []).map((s) => ({
      name: s.name,
      replicas: s.config?.num_replicas ?? 1,
      messages: s.state?.messages ?? 0,
      lastSeq: s.state?.last_seq ?? 0,
      ...(s.cluster?.leader ? { leader: s.cluster.leader } : {}),
      peers: s.cluster?.replicas ?? [],
    })),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once the nodes agree on a meta leader and the leader sees every other node as a
 * current peer; throws after `timeoutMs` with what it saw last.
 */
export async function waitForJetStreamCluster(
  nodes: readonly Pick<NatsClusterNode, "name" | "monitorUrl">[],
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const until = Date.now() + (options.timeoutMs ?? 30_000);
  let last = "no answer";
  for (;;) {
    try {
      const all = await Promise.all(nodes.map((n) => fetchJsz(n.monitorUrl)));
      const leaders = new Set(all.map((j) => j.meta_cluster?.leader ?? ""));
      const leaderName = [...leaders][0] ?? "";
      const leader = nodes.findIndex((n) => n.name === leaderName);
      const peers = leader >= 0 ? (all[leader]?.meta_cluster?.replicas ?? []) : [];
      const current = peers.filter((p) => p.current && !p.offline).map((p) => p.name);
      if (leaders.size === 1 && leader >= 0 && nodes.every((n) => n.name === leaderName || current.includes(n.name))) return;
      last = `meta leader ${[...leaders].map((l) => l || "none").join(" / ")}, current peers ${current.join(", ") || "none"}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= until) throw new Error(`the JetStream cluster did not form within ${options.timeoutMs ?? 30_000} ms (${last})`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------
// Revision-checked writes on replicated streams

/** What probeRevisionChecks found. */
export interface RevisionCheckProbe {
  /** Replicas of the scratch bucket it wrote to. */
  replicas: number;
  rounds: number;
  /** Rounds in which more than one of the racing updates, all made against the same revision, succeeded. */
  violations: number;
  /** True when every round had exactly one winner. */
  enforced: boolean;
}

/**
 * Finds out whether the servers enforce revision-checked KV updates (`kv.update(key, value,
 * revision)`, i.e. Nats-Expected-Last-Subject-Sequence) when several writers race, on a scratch
 * bucket with `replicas` copies: in each round, `writers` updates against the same revision are
 * sent at once; exactly one may succeed. The platform's optimistic concurrency (drone claims,
 * workflow and delivery records) depends on it. The bucket is deleted afterwards. Needs a
 * connection that may create and delete any stream (the admin user).
 */
export async function probeRevisionChecks(
  nc: NatsConnection,
  options: { replicas: number; rounds?: number; writers?: number; bucket?: string },
): Promise<RevisionCheckProbe> {
  const rounds = options.rounds ?? 10;
  const writers = options.writers ?? 8;
  const bucket = options.bucket ?? `revision-probe-${process.pid}-${Date.now().toString(36)}`;
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const kv = await js.views.kv(bucket, { replicas: options.replicas, history: 1 });
  let violations = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const key = `k${round}`;
      const revision = await kv.create(key, new Uint8Array([0]));
      const results = await Promise.allSettled(
        Array.from({ length: writers }, (_, i) => kv.update(key, new Uint8Array([i + 1]), revision)),
      );
      if (results.filter((r) => r.status === "fulfilled").length !== 1) violations++;
    }
  } finally {
    await jsm.streams.delete(`KV_${bucket}`).catch(() => false);
  }
  return { replicas: options.replicas, rounds, violations, enforced: violations === 0 };
}
