// Load balancing over real gRPC servers on loopback: a client given several instances spreads its
// calls round robin (RPC_LB_POLICY=round_robin; p2c-balancing.test.ts covers the default policy);
// an instance that keeps failing while its peers succeed is ejected (outlier detection) and taken
// back once its ejection time is over and it answers again.
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { addService, createClient, unavailable, type Client } from "../../lib/grpc/index.js";
import { balancingChannelOptions, channelTarget, readBalancingConfig } from "../../lib/grpc/load-balancing.js";

interface Instance {
  readonly address: string;
  calls: number;
  failing: boolean;
  readonly server: grpc.Server;
}

const instances: Instance[] = [];
let client: Client<typeof Health>;

async function startInstance(): Promise<Instance> {
  const server = new grpc.Server();
  const instance = { address: "", calls: 0, failing: false, server } as { -readonly [K in keyof Instance]: Instance[K] };
  addService(server, Health, {
    check: async () => {
      instance.calls++;
      if (instance.failing) throw unavailable("this instance is broken");
      return { status: HealthCheckResponse_ServingStatus.SERVING };
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  instance.address = `127.0.0.1:${port}`;
  return instance;
}

/** Calls `count` times; failures are expected while an instance is broken. */
async function callMany(count: number): Promise<number> {
  let failures = 0;
  for (let i = 0; i < count; i++) {
    await client.check({ service: "" }, { timeoutMs: 2_000 }).catch(() => failures++);
  }
  return failures;
}

function resetCounts(): void {
  for (const instance of instances) instance.calls = 0;
}

beforeAll(async () => {
  for (let i = 0; i < 3; i++) instances.push(await startInstance());
  const balancing = readBalancingConfig({
    RPC_LB_POLICY: "round_robin",
    RPC_OUTLIER_INTERVAL_MS: "200",
    RPC_OUTLIER_BASE_EJECTION_MS: "3000",
    RPC_OUTLIER_MIN_CALLS: "5",
  });
  client = createClient(Health, {
    address: instances.map((i) => i.address).join(","),
    channelOptions: balancingChannelOptions(balancing),
    observe: false,
  });
});

afterAll(() => {
  client?.close();
  for (const { server } of instances) server.forceShutdown();
});

describe("load balancing", () => {
  it("turns a list of instances into one balanced target", () => {
    expect(channelTarget("127.0.0.1:1,127.0.0.1:2")).toBe("ipv4:127.0.0.1:1,127.0.0.1:2");
    expect(channelTarget("localhost:1, localhost:2")).toBe("ipv4:127.0.0.1:1,127.0.0.1:2");
    expect(channelTarget("[::1]:1,[::1]:2")).toBe("ipv6:[::1]:1,[::1]:2");
    expect(channelTarget("dns:///delivery:50055")).toBe("dns:///delivery:50055");
    expect(() => channelTarget("a.example:1,b.example:2")).toThrow(/IPv4|IPv6/);
  });

  it("spreads calls round robin over every instance", async () => {
    await callMany(10); // connects to every instance
    resetCounts();
    expect(await callMany(30)).toBe(0);
    for (const instance of instances) expect(instance.calls).toBe(10);
  });

  it("ejects an instance that keeps failing and takes it back once it recovers", async () => {
    const broken = instances[1]!;
    broken.failing = true;
    // Calls over a few evaluation intervals: the broken instance's failures get it ejected, after
    // which a round of calls no longer reaches it (however slow a loaded machine makes them).
    await vi.waitFor(
      async () => {
        resetCounts();
        await callMany(15);
        expect(broken.calls).toBe(0);
      },
      { timeout: 20_000, interval: 200 },
    );
    resetCounts();
    expect(await callMany(15)).toBe(0);
    expect(broken.calls).toBe(0);

    // Repaired: after its ejection time it gets its share again, and every call succeeds.
    broken.failing = false;
    await vi.waitFor(
      async () => {
        resetCounts();
        expect(await callMany(15)).toBe(0);
        expect(broken.calls).toBeGreaterThan(0);
      },
      { timeout: 20_000, interval: 200 },
    );
  }, 60_000);
});
