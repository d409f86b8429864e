// The communication layer under real faults, over real gRPC on loopback: a stopped dependency
// opens the circuit (calls fail fast) and a restarted one closes it again; a method whose contract
// does not say it is safe to repeat is never retried, an idempotent one is; and a slow downstream
// makes the upstream call fail with DEADLINE_EXCEEDED at the caller's budget, not later.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { createCommsLayer, type CommsLayer } from "../../lib/comms/layer.js";
import { addService, createClient, unavailable, type HandlerContext } from "../../lib/grpc/index.js";
import { createTargetPolicies } from "../../lib/resilience/policy.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { accountModule } from "../../services/account/module.js";
import { startNatsServer, type TestNatsServer } from "../harness/nats-server.js";
import { rpcError } from "../harness/rpc.js";
import { startTestService } from "../harness/services.js";

const servers: grpc.Server[] = [];

async function serve(register: (server: grpc.Server) => void): Promise<string> {
  const server = new grpc.Server();
  register(server);
  servers.push(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return `127.0.0.1:${port}`;
}

afterAll(() => {
  for (const server of servers) server.forceShutdown();
});

describe("circuit breaker", () => {
  let nats: TestNatsServer;
  let account: RunningService | undefined;
  let comms: CommsLayer;

  beforeAll(async () => {
    nats = await startNatsServer();
    account = await startTestService(accountModule, nats.url);
    comms = await createCommsLayer({
      identity: "scheduler",
      env: {
        INTERNAL_TLS: "off",
        ACCOUNT_ADDRESS: account.address,
        RPC_BREAKER_MIN_CALLS: "5",
        RPC_BREAKER_WINDOW_MS: "5000",
        RPC_BREAKER_HALF_OPEN_AFTER_MS: "500",
        RPC_TIMEOUT_READ_MS: "3000",
      },
    });
  });

  afterAll(async () => {
    comms?.close();
    await account?.stop();
    await nats?.stop();
  });

  it("opens when the dependency stops, fails fast while open, and closes once it is back", async () => {
    const accounts = comms.client(AccountService, "account");
    expect((await accounts.getAccount({ accountId: "acct-demo" })).account?.accountId).toBe("acct-demo");

    const port = account!.port;
    await account!.stop(0, 0);
    account = undefined;

    // Calls fail (UNAVAILABLE) until the failure ratio over the window opens the circuit.
    let open: ConnectError | undefined;
    for (let i = 0; i < 30 && open === undefined; i++) {
      const error = await rpcError(accounts.getAccount({ accountId: "acct-demo" }));
      expect(error.code).toBe(Code.Unavailable);
      if (/circuit open/.test(error.rawMessage)) open = error;
    }
    expect(open?.rawMessage).toMatch(/account is failing; calls are refused/);

    // While open, a call fails at once, without reaching the network: the breaker answers it.
    const fast = await rpcError(accounts.getAccount({ accountId: "acct-demo" }));
    expect(fast.rawMessage).toMatch(/circuit open/);

    // The dependency returns on the same port; after the half-open delay a trial call closes it.
    account = await startTestService(accountModule, nats.url, { port });
    const back = await vi.waitFor(() => accounts.getAccount({ accountId: "acct-demo" }), { timeout: 10_000, interval: 200 });
    expect(back.account?.accountId).toBe("acct-demo");
    const again = await accounts.getAccount({ accountId: "acct-contoso" });
    expect(again.account?.accountId).toBe("acct-contoso");
  });
});

describe("retries", () => {
  it("never repeats a method its contract does not mark safe, even on UNAVAILABLE; repeats an idempotent one", async () => {
    const calls = { schedule: 0, cancel: 0 };
    const address = await serve((server) =>
      addService(server, DeliveryApiService, {
        scheduleDelivery: async () => {
          calls.schedule++;
          throw unavailable("down for a moment");
        },
        cancelDelivery: async (request: { deliveryId: string }) => {
          calls.cancel++;
          if (calls.cancel < 3) throw unavailable("down for a moment");
          return { deliveryId: request.deliveryId };
        },
      } as never),
    );
    const policies = createTargetPolicies({ retryMaxAttempts: 3, retryInitialBackoffMs: 5, retryMaxBackoffMs: 20 });
    const client = createClient(DeliveryApiService, { address, policy: policies.forTarget("api") });
    try {
      // ScheduleDelivery has no idempotency_level: one call reaches the server.
      const here = { latitude: 47.6, longitude: -122.3 };
      const deadline = { seconds: BigInt(Math.floor(Date.now() / 1000) + 86_400), nanos: 0 };
      const request = { pickup: here, dropoff: here, deadline, packageInfo: { packageId: "p-1", size: 1, weightKg: 1 } };
      const error = await rpcError(client.scheduleDelivery(request));
      expect(error.code).toBe(Code.Unavailable);
      expect(calls.schedule).toBe(1);

      // CancelDelivery is IDEMPOTENT: repeated until it succeeds, within the attempts allowed.
      const answer = await client.cancelDelivery({ deliveryId: "d-1" });
      expect(answer.deliveryId).toBe("d-1");
      expect(calls.cancel).toBe(3);
    } finally {
      client.close();
      policies.dispose();
    }
  });
});

describe("deadline propagation", () => {
  it("fails a call through a slow downstream at the caller's budget, and the downstream sees that budget", async () => {
    let downstreamDeadline: Date | undefined;
    const downstream = await serve((server) =>
      addService(server, Health, {
        check: async (_request: unknown, ctx: HandlerContext) => {
          downstreamDeadline = ctx.deadline;
          await sleep(3_000, undefined, { signal: ctx.signal }).catch(() => undefined);
          return { status: HealthCheckResponse_ServingStatus.SERVING };
        },
      } as never),
    );
    const policies = createTargetPolicies();
    // The upstream's own client would wait 10 s; the incoming budget caps it.
    const toDownstream = createClient(Health, { address: downstream, policy: policies.forTarget("downstream"), defaultTimeoutMs: 10_000 });
    const upstream = await serve((server) =>
      addService(server, Health, {
        check: async () => toDownstream.check({ service: "" }),
      } as never),
    );
    const caller = createClient(Health, { address: upstream });
    try {
      const budgetMs = 400;
      const started = Date.now();
      const deadline = new Date(started + budgetMs);
      const error = await rpcError(caller.check({ service: "" }, { deadline }));
      const elapsed = Date.now() - started;
      expect(error.code).toBe(Code.DeadlineExceeded);
      // Not before the caller's budget; and not at the downstream client's 10 s either: the
      // downstream got the caller's deadline (to the grpc-timeout's precision and the two hops'
      // transit), not 10 s.
      expect(elapsed).toBeGreaterThanOrEqual(budgetMs - 20);
      expect(downstreamDeadline).toBeDefined();
      expect(Math.abs(downstreamDeadline!.getTime() - deadline.getTime())).toBeLessThan(2_000);
    } finally {
      caller.close();
      toDownstream.close();
      policies.dispose();
    }
  });
});
