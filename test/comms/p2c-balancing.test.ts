// The p2c_ewma balancing policy: its choice and estimate in isolation (no clock: every time is
// given), its configuration as a child of outlier_detection, and over two real gRPC servers on
// loopback, one of them slow: the slow one gets far fewer calls than under round robin, and an
// instance that keeps failing is still ejected by outlier detection.
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { addService, createClient, unavailable, type Client } from "../../lib/grpc/index.js";
import { balancingChannelOptions, readBalancingConfig } from "../../lib/grpc/load-balancing.js";
import { chooseOfTwo, EndpointLoad, P2C_EWMA_POLICY, P2cEwmaConfig, type P2cEwmaSettings } from "../../lib/grpc/p2c-ewma.js";

const SETTINGS: P2cEwmaSettings = { decayMs: 10_000, defaultRttMs: 10, latency: true };

describe("p2c_ewma choice and estimate", () => {
  const load = (rttMs: number, outstanding = 0, settings = SETTINGS): { load: EndpointLoad } => {
    const l = new EndpointLoad(settings, 0);
    l.observe(rttMs, 0);
    l.outstanding = outstanding;
    return { load: l };
  };

  it("sends a call to the cheaper of the two drawn, whichever is drawn first", () => {
    const fast = load(2);
    const slow = load(40);
    for (const draws of [[0, 0], [0.9, 0], [0, 0.9], [0.99, 0.99]]) {
      let i = 0;
      expect(chooseOfTwo([fast, slow], 0, () => draws[i++]!)).toBe(fast);
      i = 0;
      expect(chooseOfTwo([slow, fast], 0, () => draws[i++]!)).toBe(fast);
    }
  });

  it("weighs outstanding calls: an instance as fast but busier loses, a slower idle one can win", () => {
    const busy = load(5, 3); // 5 × 4 = 20
    const idle = load(5, 0); // 5
    const slowIdle = load(15, 0); // 15 < 20
    expect(chooseOfTwo([busy, idle], 0, () => 0)).toBe(idle);
    expect(chooseOfTwo([busy, slowIdle], 0, () => 0)).toBe(slowIdle);
    const leastOutstanding = { ...SETTINGS, latency: false };
    expect(chooseOfTwo([load(1, 2, leastOutstanding), load(500, 1, leastOutstanding)], 0, () => 0).load.outstanding).toBe(1);
  });

  it("never draws the same instance twice, and draws every pair", () => {
    const three = [load(1), load(1), load(1)];
    const seen = new Set<string>();
    for (const a of [0, 0.4, 0.8]) {
      for (const b of [0, 0.6]) {
        let i = 0;
        const draws = [a, b];
        const picked: number[] = [];
        chooseOfTwo(
          three.map((c, index) => ({ load: { cost: () => (picked.push(index), 1) } as unknown as EndpointLoad })),
          0,
          () => draws[i++]!,
        );
        expect(picked[0]).not.toBe(picked[1]);
        seen.add([...picked].sort().join());
      }
    }
    expect(seen).toEqual(new Set(["0,1", "0,2", "1,2"]));
  });

  it("takes peaks at once, comes down along the average, and decays when idle", () => {
    const l = new EndpointLoad(SETTINGS, 0);
    expect(l.estimateMs(0)).toBe(10); // before any answer
    l.observe(50, 0);
    expect(l.estimateMs(0)).toBe(50); // a peak sets it
    l.observe(1, 1_000); // one second later, a fast call: 50 decayed, then moved towards 1
    const afterFast = l.estimateMs(1_000);
    expect(afterFast).toBeLessThan(50 * Math.exp(-0.1));
    expect(afterFast).toBeGreaterThan(1);
    // Unused for a minute, the estimate has decayed to almost nothing: the instance is tried again.
    expect(l.estimateMs(61_000)).toBeLessThan(0.2);
    l.observe(80, 61_000);
    expect(l.estimateMs(61_000)).toBe(80);
  });

  it("reads its service-config entry with defaults and refuses bad values", () => {
    expect(P2cEwmaConfig.createFromJson({}).settings).toEqual({ decayMs: 10_000, defaultRttMs: 10, latency: true });
    expect(P2cEwmaConfig.createFromJson({ decay_ms: 500, latency: false }).settings).toEqual({ decayMs: 500, defaultRttMs: 10, latency: false });
    expect(() => P2cEwmaConfig.createFromJson({ decay_ms: -1 })).toThrow(/decay_ms/);
    expect(() => P2cEwmaConfig.createFromJson({ latency: "no" })).toThrow(/latency/);
  });
});

describe("balancing configuration", () => {
  it("defaults to p2c_ewma, takes round_robin from RPC_LB_POLICY, refuses anything else", () => {
    expect(readBalancingConfig({}).policy).toBe(P2C_EWMA_POLICY);
    expect(readBalancingConfig({ RPC_LB_POLICY: "round_robin" }).policy).toBe("round_robin");
    expect(() => readBalancingConfig({ RPC_LB_POLICY: "random" })).toThrow(/RPC_LB_POLICY/);
  });

  it("puts the policy under outlier_detection, which grpc-js accepts as its child", () => {
    for (const [env, child] of [
      [{}, P2C_EWMA_POLICY],
      [{ RPC_LB_POLICY: "round_robin" }, "round_robin"],
    ] as const) {
      const options = balancingChannelOptions(readBalancingConfig(env));
      const serviceConfig = JSON.parse(options["grpc.service_config"] as string) as {
        loadBalancingConfig: Parameters<typeof grpc.experimental.parseLoadBalancingConfig>[0][];
      };
      const parsed = grpc.experimental.parseLoadBalancingConfig(serviceConfig.loadBalancingConfig[0]!);
      expect(parsed.getLoadBalancerName()).toBe("outlier_detection");
      const json = parsed.toJsonObject() as { outlier_detection: { child_policy: object[] } };
      expect(Object.keys(json.outlier_detection.child_policy[0]!)).toEqual([child]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Over real servers

interface Instance {
  address: string;
  calls: number;
  delayMs: number;
  failing: boolean;
  readonly server: grpc.Server;
}

const instances: Instance[] = [];
const clients: Client<typeof Health>[] = [];

async function startInstance(delayMs: number): Promise<Instance> {
  const server = new grpc.Server();
  const instance: Instance = { address: "", calls: 0, delayMs, failing: false, server };
  addService(server, Health, {
    check: async () => {
      instance.calls++;
      if (instance.failing) throw unavailable("this instance is broken");
      if (instance.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, instance.delayMs));
      return { status: HealthCheckResponse_ServingStatus.SERVING };
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  instance.address = `127.0.0.1:${port}`;
  return instance;
}

function clientWith(env: Record<string, string>): Client<typeof Health> {
  const client = createClient(Health, {
    address: instances.map((i) => i.address).join(","),
    channelOptions: balancingChannelOptions(readBalancingConfig(env)),
    observe: false,
  });
  clients.push(client);
  return client;
}

async function callMany(client: Client<typeof Health>, count: number): Promise<number> {
  let failures = 0;
  for (let i = 0; i < count; i++) {
    await client.check({ service: "" }, { timeoutMs: 5_000 }).catch(() => failures++);
  }
  return failures;
}

function resetCounts(): void {
  for (const instance of instances) instance.calls = 0;
}

/** Calls until every instance has answered at least once (both connections up). */
async function warmUp(client: Client<typeof Health>): Promise<void> {
  await client.waitForReady(Date.now() + 10_000);
  await vi.waitFor(
    async () => {
      await callMany(client, 4);
      for (const instance of instances) expect(instance.calls).toBeGreaterThan(0);
    },
    { timeout: 20_000, interval: 10 },
  );
}

beforeAll(async () => {
  instances.push(await startInstance(0), await startInstance(40));
});

afterAll(() => {
  for (const client of clients) client.close();
  for (const { server } of instances) server.forceShutdown();
});

describe("over two servers, one slow", () => {
  const CALLS = 60;

  it("round robin gives the slow one half the calls", async () => {
    const client = clientWith({ RPC_LB_POLICY: "round_robin" });
    await warmUp(client);
    resetCounts();
    expect(await callMany(client, CALLS)).toBe(0);
    const slow = instances[1]!.calls;
    expect(slow).toBeGreaterThanOrEqual(CALLS * 0.4);
    expect(slow).toBeLessThanOrEqual(CALLS * 0.6);
  }, 60_000);

  it("p2c_ewma sends most calls to the fast one", async () => {
    // The estimate is peak-sensitive: one slow answer from the fast instance (its first call on a
    // new connection, a pause of a loaded machine) rightly steers calls away from it until the peak
    // has decayed. A 1 s decay forgets such a peak within seconds; batches are sent until one shows
    // the balance, which round robin (half the calls, above) never would.
    const client = clientWith({ RPC_LB_EWMA_DECAY_MS: "1000" });
    await warmUp(client); // the slow one has answered: its estimate is its latency
    await vi.waitFor(
      async () => {
        resetCounts();
        expect(await callMany(client, CALLS)).toBe(0);
        expect(instances[0]!.calls + instances[1]!.calls).toBe(CALLS);
        expect(instances[1]!.calls).toBeLessThanOrEqual(CALLS * 0.25);
      },
      { timeout: 40_000, interval: 0 },
    );
  }, 60_000);

  it("p2c_ewma under outlier detection: an instance that keeps failing is ejected and taken back", async () => {
    // Ejected for 10 s: long enough for a batch of calls on a loaded machine to fall inside it.
    const client = clientWith({ RPC_OUTLIER_INTERVAL_MS: "200", RPC_OUTLIER_BASE_EJECTION_MS: "10000", RPC_OUTLIER_MIN_CALLS: "5" });
    await warmUp(client);
    const broken = instances[1]!;
    broken.delayMs = 0;
    broken.failing = true; // fails fast: a latency estimate alone would favour it
    // Once ejected, a whole batch goes to the other instance, and none of it fails.
    await vi.waitFor(
      async () => {
        resetCounts();
        const failures = await callMany(client, 15);
        expect(broken.calls).toBe(0);
        expect(failures).toBe(0);
      },
      { timeout: 30_000, interval: 200 },
    );

    broken.failing = false;
    await vi.waitFor(
      async () => {
        resetCounts();
        expect(await callMany(client, 15)).toBe(0);
        expect(broken.calls).toBeGreaterThan(0);
      },
      { timeout: 60_000, interval: 200 },
    );
  }, 120_000);
});
