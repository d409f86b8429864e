// A real 3-node JetStream cluster: replicas raised and never lowered by the platform's setup, and
// the loss of one node survived (publishes with ack and KV reads go on, nothing acknowledged is
// lost, and the node catches up when it comes back).
import type { JetStreamClient, JetStreamManager, KV, NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeRevisionChecks } from "../lib/devtools/nats-cluster.js";
import { drainQuietly } from "../lib/nats/connection.js";
import { openBucket } from "../lib/nats/kv.js";
import { ensureStreams, STREAM_DEFINITIONS, STREAMS, subjects } from "../lib/nats/streams.js";
import { startNatsCluster, type TestNatsCluster } from "./harness/nats-cluster.js";

const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `op` until it succeeds, for at most `ms`: a node loss makes requests fail for a moment. */
async function retrying<T>(op: () => Promise<T>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (Date.now() > until) throw err;
      await sleep(250);
    }
  }
}

/** Polls `check` until it returns true, for at most `ms`; fails with its last description. */
async function until(what: string, check: () => Promise<boolean | string>, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: boolean | string = false;
  for (;;) {
    try {
      last = await check();
      if (last === true) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms (last: ${String(last)})`);
    await sleep(250);
  }
}

const BUCKETS = ["accounts", "drones"] as const;

describe("a 3-node JetStream cluster", () => {
  let cluster: TestNatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  beforeAll(async () => {
    cluster = await startNatsCluster({ size: 3, auth: true });
    nc = await cluster.connectAs("admin", { name: "cluster-test" });
    jsm = await nc.jetstreamManager();
    js = nc.jetstream();
  }, 120_000);

  afterAll(async () => {
    await drainQuietly(nc);
    await cluster?.stop();
  }, 60_000);

  it("raises streams and buckets from 1 to 3 replicas, and never lowers them when 1 is asked again", async () => {
    const first = await ensureStreams(jsm, { replicas: 1 });
    expect(first.every((r) => r.action === "created")).toBe(true);
    for (const bucket of BUCKETS) await openBucket(js, bucket, { replicas: 1 });
    for (const def of STREAM_DEFINITIONS) expect((await jsm.streams.info(def.name)).config.num_replicas).toBe(1);

    const raised = await ensureStreams(jsm, { replicas: 3 });
    for (const r of raised) {
      expect(r.action, r.name).toBe("updated");
      expect(r.changed, r.name).toEqual(["num_replicas"]);
    }
    // A service opens its own bucket as itself (same users on every node) and raises it.
    const account = await cluster.connectAs("account");
    try {
      await openBucket(account.jetstream(), "accounts", { replicas: 3 });
    } finally {
      await drainQuietly(account);
    }
    await openBucket(js, "drones", { replicas: 3 });

    // A restart of the platform that asks for 1 (the default) leaves every copy in place.
    const again = await ensureStreams(jsm, { replicas: 1 });
    for (const r of again) {
      expect(r.action, r.name).toBe("unchanged");
      expect(r.kept, r.name).toEqual([{ field: "num_replicas", current: "3", wanted: "1" }]);
    }
    for (const bucket of BUCKETS) await openBucket(js, bucket, { replicas: 1 });

    const names = [...STREAM_DEFINITIONS.map((d) => d.name), ...BUCKETS.map((b) => `KV_${b}`)];
    for (const name of names) expect((await jsm.streams.info(name)).config.num_replicas, name).toBe(3);
    // Every node shows them at 3 replicas with a leader, and each leader sees both followers current
    // (a follower's own view of the other follower is not kept up to date).
    await until("every node sees every stream at 3 replicas, followers current", async () => {
      const views = await Promise.all(cluster.nodes.map((n) => cluster.streams(n.index)));
      const bad = names.filter((name) =>
        views.some((view, i) => {
          const s = view.find((x) => x.name === name);
          if (!s || s.replicas !== 3 || !s.leader) return true;
          return s.leader === cluster.nodes[i]!.name && (s.peers.length !== 2 || !s.peers.every((p) => p.current));
        }),
      );
      return bad.length === 0 || `not yet: ${bad.join(", ")}`;
    });
  }, 180_000);

  it("probes whether racing revision-checked updates have one winner, and finds one at 1 replica", async () => {
    // At 3 replicas nats-server 2.9.10 lets several racing updates made against one revision
    // succeed (README, NATS JetStream); make run reports it with this probe. At 1 replica the
    // check holds on every release, so the probe must find exactly one winner per round there.
    const single = await probeRevisionChecks(nc, { replicas: 1, rounds: 5, writers: 6 });
    expect(single).toEqual({ replicas: 1, rounds: 5, violations: 0, enforced: true });
    const replicated = await probeRevisionChecks(nc, { replicas: 3, rounds: 5, writers: 6 });
    expect(replicated.rounds).toBe(5);
    expect(replicated.enforced).toBe(replicated.violations === 0);
    // The scratch buckets are gone.
    const names: string[] = [];
    for await (const name of jsm.streams.names()) names.push(name);
    expect(names.filter((n) => n.startsWith("KV_revision-probe"))).toEqual([]);
  }, 120_000);

  it("keeps taking publishes and serving KV reads while a node is SIGKILLed, and the node catches up", async () => {
    await ensureStreams(jsm, { replicas: 3 });
    const kv: KV = await openBucket(js, "drones", { replicas: 3 });
    let sent = 0;
    const publish = async (phase: string) => {
      const id = `${phase}-${sent}`;
      // The same message id on a retry: JetStream stores it once.
      await retrying(() => js.publish(subjects.scheduleRequest(id), encode(id), { msgID: id, timeout: 5_000 }));
      await retrying(() => kv.put(`drone.${id}`, encode(id)));
      sent++;
    };
    for (let i = 0; i < 20; i++) await publish("before");

    // Kill the leader of the requests stream: the hardest case (a new leader must be elected).
    const leaderName = (await cluster.streams(0)).find((s) => s.name === STREAMS.DELIVERY_REQUESTS.name)?.leader;
    const victim = Math.max(0, cluster.nodes.findIndex((n) => n.name === leaderName));
    const victimPid = cluster.pid(victim);
    expect(victimPid).toBeDefined();
    await cluster.kill(victim);
    expect(cluster.pid(victim)).toBeUndefined();

    for (let i = 0; i < 20; i++) await publish("during");
    // KV reads on the survivors, old and new keys.
    expect(decode((await retrying(() => kv.get("drone.before-0")))?.value)).toBe("before-0");
    expect(decode((await retrying(() => kv.get(`drone.during-${sent - 1}`)))?.value)).toBe(`during-${sent - 1}`);
    const survivor = cluster.nodes.find((n) => n.index !== victim)!;
    await until("a survivor leads the requests stream", async () => {
      const s = (await cluster.streams(survivor.index)).find((x) => x.name === STREAMS.DELIVERY_REQUESTS.name);
      return (!!s?.leader && s.leader !== cluster.nodes[victim]!.name) || `leader ${s?.leader ?? "none"}`;
    });
    expect((await retrying(() => jsm.streams.info(STREAMS.DELIVERY_REQUESTS.name))).state.messages).toBe(sent);

    await cluster.restart(victim);
    expect(cluster.pid(victim)).not.toBe(victimPid);
    for (let i = 0; i < 10; i++) await publish("after");
    await cluster.waitForCluster(90_000);

    // The restarted node holds every message and every key, and the leaders see it current.
    const victimName = cluster.nodes[victim]!.name;
    await until("the restarted node has caught up", async () => {
      const own = await cluster.streams(victim);
      const requests = own.find((s) => s.name === STREAMS.DELIVERY_REQUESTS.name);
      const drones = own.find((s) => s.name === "KV_drones");
      if (requests?.messages !== sent || requests.lastSeq !== sent) return `requests on the node: ${requests?.messages}/${sent} (last ${requests?.lastSeq})`;
      if (drones?.messages !== sent) return `KV_drones on the node: ${drones?.messages}/${sent}`;
      const views = await Promise.all(cluster.nodes.map((n) => cluster.streams(n.index)));
      const lagging = own.filter((s) => {
        const leader = cluster.nodes.find((n) => n.name === s.leader);
        const seen = leader ? views[leader.index]?.find((x) => x.name === s.name) : undefined;
        return !seen || (s.leader !== victimName && !seen.peers.some((p) => p.name === victimName && p.current));
      });
      return lagging.length === 0 || `not current on ${lagging.map((s) => s.name).join(", ")}`;
    });
    const info = await jsm.streams.info(STREAMS.DELIVERY_REQUESTS.name);
    expect(info.state.messages).toBe(sent);
    expect(info.cluster?.replicas?.length).toBe(2);
    expect(info.cluster?.replicas?.every((r) => r.current)).toBe(true);
    for (let i = 0; i < sent; i += 7) {
      const key = i < 20 ? `before-${i}` : i < 40 ? `during-${i}` : `after-${i}`;
      expect(decode((await kv.get(`drone.${key}`))?.value)).toBe(key);
    }
  }, 240_000);
});
