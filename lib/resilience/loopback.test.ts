// The policy around real grpc-js calls on loopback: a flaky read is retried until it answers, an
// answer about the request is not, a handler's downstream call inherits the incoming deadline, and
// a target nobody listens on trips the circuit.
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { addService, createClient, notFound, unavailable, type Client } from "../grpc/index.js";
import { CircuitOpenError } from "./breaker.js";
import { runWithDeadline } from "./deadline.js";
import { createTargetPolicy, type TargetPolicy } from "./policy.js";

const getAccount = AccountService.method.getAccount;
const checkAccountStatus = AccountService.method.checkAccountStatus;

const seen = new Map<string, number>();
let innerDeadline: Date | undefined;
let outerDeadline: Date | undefined;
/** The deadline the relay gave its downstream call, before it crossed the wire. */
let relayedDeadline: Date | undefined;

let server: grpc.Server;
let address: string;
let client: Client<typeof AccountService>;
let policy: TargetPolicy;

beforeAll(async () => {
  server = new grpc.Server();
  addService(server, AccountService, {
    async getAccount(request, ctx) {
      const count = (seen.get(request.accountId) ?? 0) + 1;
      seen.set(request.accountId, count);
      switch (request.accountId) {
        case "flaky":
          if (count <= 2) {
            throw unavailable("account store is restarting");
          }
          return { account: { accountId: "flaky", status: AccountStatus.ACTIVE } };
        case "relay":
          // What the server binding does around every handler: the incoming deadline becomes the budget.
          return runWithDeadline(ctx.deadline, async () => {
            outerDeadline = ctx.deadline;
            const deadline = policy.deadlineFor(checkAccountStatus)!;
            relayedDeadline = deadline;
            const answer = await policy.execute(
              checkAccountStatus,
              (attemptDeadline) => client.checkAccountStatus({ accountId: "a-1" }, { deadline: attemptDeadline }),
              { deadline },
            );
            return { account: { accountId: answer.accountId, status: answer.status } };
          });
        default:
          throw notFound(`account ${request.accountId}`);
      }
    },
    checkAccountStatus(request, ctx) {
      innerDeadline = ctx.deadline;
      return { accountId: request.accountId, status: AccountStatus.ACTIVE, canOrder: true };
    },
    createAccount() {
      throw unavailable("not served here");
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  address = `127.0.0.1:${port}`;
  client = createClient(AccountService, { address });
  policy = createTargetPolicy(address, { retryInitialBackoffMs: 5, retryMaxBackoffMs: 20 });
});

afterAll(() => {
  client?.close();
  policy?.dispose();
  server?.forceShutdown();
});

describe("over loopback", () => {
  it("retries a flaky read until it answers", async () => {
    const deadline = policy.deadlineFor(getAccount)!;
    const answer = await policy.execute(
      getAccount,
      (attemptDeadline) => client.getAccount({ accountId: "flaky" }, { deadline: attemptDeadline }),
      { deadline },
    );
    expect(answer.account?.accountId).toBe("flaky");
    expect(seen.get("flaky")).toBe(3);
  });

  it("does not retry NOT_FOUND", async () => {
    const deadline = policy.deadlineFor(getAccount)!;
    const failure = await policy
      .execute(getAccount, (d) => client.getAccount({ accountId: "nobody" }, { deadline: d }), { deadline })
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.NotFound);
    expect(seen.get("nobody")).toBe(1);
    expect(policy.state()).toBe("closed");
  });

  it("gives a handler's downstream call no more time than the incoming call has", async () => {
    const startedAt = Date.now();
    await client.getAccount({ accountId: "relay" }, { timeoutMs: 800 });
    expect(outerDeadline).toBeDefined();
    expect(innerDeadline).toBeDefined();
    // The inner call would get the 2 s read default without the incoming budget: it is given the
    // incoming deadline at most, and that reaches the downstream server (deadlines cross the wire
    // as a timeout, so the server's clock reads it a transit later: no exact comparison there).
    expect(relayedDeadline!.getTime()).toBeLessThanOrEqual(outerDeadline!.getTime());
    expect(innerDeadline!.getTime()).toBeLessThan(startedAt + 1_500);
  });

  it("opens the circuit of a target nobody listens on, then refuses at once", async () => {
    const probe = createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const deadAddress = `127.0.0.1:${(probe.address() as AddressInfo).port}`;
    probe.close();
    await once(probe, "close");

    const deadClient = createClient(AccountService, { address: deadAddress });
    const deadPolicy = createTargetPolicy(deadAddress, {
      retryInitialBackoffMs: 2,
      retryMaxBackoffMs: 5,
      breakerMinCalls: 4,
      breakerHalfOpenAfterMs: 60_000,
    });
    try {
      const attempts: number[] = [];
      const call = () =>
        deadPolicy
          .execute(
            getAccount,
            (d, n) => {
              attempts.push(n);
              return deadClient.getAccount({ accountId: "a-1" }, { deadline: d });
            },
            { deadline: deadPolicy.deadlineFor(getAccount)! },
          )
          .then(
            () => {
              throw new Error("expected the call to fail");
            },
            (err: unknown) => err as ConnectError,
          );
      const first = await call();
      expect(first.code).toBe(Code.Unavailable);
      expect(attempts).toEqual([1, 2, 3]);
      const second = await call();
      expect(second.code).toBe(Code.Unavailable);
      expect(deadPolicy.state()).toBe("open");
      attempts.length = 0;
      const third = await call();
      expect(third).toBeInstanceOf(CircuitOpenError);
      expect(third.rawMessage).toBe(`${deadAddress} is failing; calls are refused for 60s (circuit open)`);
      expect(attempts).toEqual([]);
    } finally {
      deadClient.close();
      deadPolicy.dispose();
    }
  });
});
