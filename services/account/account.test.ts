// The Account service over real gRPC against a real nats-server.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountSchema, AccountStatus } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { createClient, fieldViolations, type Client } from "../../lib/grpc/index.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { healthStatus, reflectionFilesFor, reflectionServices } from "../../test/harness/grpc-probes.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { accountModule } from "./module.js";
import { rpcError } from "../../test/harness/rpc.js";

let nats: TestNatsServer;
let service: RunningService;
let client: Client<typeof AccountService>;


beforeAll(async () => {
  nats = await startNatsServer();
  service = await startTestService(accountModule, nats.url);
  client = createClient(AccountService, { address: service.address });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await nats?.stop();
});

describe("account service", () => {
  it("serves the seeded demo accounts and answers whether they may order", async () => {
    const { account } = await client.getAccount({ accountId: "acct-demo" });
    expect(account?.status).toBe(AccountStatus.ACTIVE);
    expect(account?.createTime).toBeDefined();

    const active = await client.checkAccountStatus({ accountId: "acct-demo" });
    expect(active).toMatchObject({ accountId: "acct-demo", canOrder: true, reason: "" });

    const suspended = await client.checkAccountStatus({ accountId: "acct-suspended" });
    expect(suspended.canOrder).toBe(false);
    expect(suspended.status).toBe(AccountStatus.SUSPENDED);
    expect(suspended.reason).toContain("payment overdue");
  });

  it("creates an account, and a repeated create answers the same", async () => {
    const account = { accountId: "acct-new", userId: "user-new", displayName: "New", status: AccountStatus.ACTIVE };
    const first = await client.createAccount({ account });
    const second = await client.createAccount({ account });
    expect(second.account).toEqual(first.account);
    const { account: stored } = await client.getAccount({ accountId: "acct-new" });
    expect(stored?.displayName).toBe("New");
  });

  it("answers ALREADY_EXISTS for the same id with different content", async () => {
    await client.createAccount({ account: { accountId: "acct-taken", userId: "u1", status: AccountStatus.ACTIVE } });
    const error = await rpcError(client.createAccount({ account: { accountId: "acct-taken", userId: "u2", status: AccountStatus.ACTIVE } }));
    expect(error.code).toBe(Code.AlreadyExists);
  });

  it("resolves concurrent creates of one id by revision: one content wins, the rest agree or conflict", async () => {
    const attempts = Array.from({ length: 8 }, (_, i) =>
      client
        .createAccount({ account: { accountId: "acct-race", userId: `user-${i % 2}`, status: AccountStatus.ACTIVE } })
        .then((r) => ({ ok: r.account?.userId }), (e: ConnectError) => ({ code: e.code })),
    );
    const results = await Promise.all(attempts);
    const { account } = await client.getAccount({ accountId: "acct-race" });
    for (const r of results) {
      if ("ok" in r) expect(r.ok).toBe(account?.userId);
      else expect(r.code).toBe(Code.AlreadyExists);
    }
  });

  it("answers NOT_FOUND for an unknown account", async () => {
    expect((await rpcError(client.getAccount({ accountId: "nobody" }))).code).toBe(Code.NotFound);
    expect((await rpcError(client.checkAccountStatus({ accountId: "nobody" }))).code).toBe(Code.NotFound);
  });

  it("answers INVALID_ARGUMENT naming each bad field", async () => {
    const empty = await rpcError(client.getAccount({ accountId: "" }));
    expect(empty.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(empty)).toEqual([{ field: "account_id", description: "value is required" }]);

    const bad = await rpcError(
      client.createAccount({
        account: { accountId: "has space", userId: "", displayName: "x".repeat(300), status: 42 as AccountStatus },
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual([
      "account.account_id",
      "account.display_name",
      "account.status",
      "account.user_id",
    ]);

    const missing = await rpcError(client.createAccount({}));
    expect(fieldViolations(missing)).toEqual([{ field: "account", description: "value is required" }]);
  });

  it("refuses a message over the size limit", async () => {
    const error = await rpcError(client.getAccount({ accountId: "a".repeat(2 * 1024 * 1024) }));
    expect(error.code).toBe(Code.ResourceExhausted);
  });

  it("reports SERVING and describes itself by reflection", async () => {
    expect(await healthStatus(service.address)).toBe("SERVING");
    expect(await healthStatus(service.address, "dronedelivery.account.v1.AccountService")).toBe("SERVING");
    expect(await reflectionServices(service.address)).toContain("dronedelivery.account.v1.AccountService");
    const files = await reflectionFilesFor(service.address, "dronedelivery.account.v1.AccountService");
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining(["dronedelivery/account/v1/account_service.proto", "dronedelivery/account/v1/account.proto"]),
    );
  });

  it("keeps its data across a restart", async () => {
    await client.createAccount({ account: { accountId: "acct-durable", userId: "u", status: AccountStatus.SUSPENDED, statusReason: "fraud check" } });
    const port = service.port;
    client.close();
    await service.stop();
    service = await startTestService(accountModule, nats.url, { port });
    client = createClient(AccountService, { address: service.address });
    const { account } = await client.getAccount({ accountId: "acct-durable" });
    expect(account).toMatchObject(create(AccountSchema, { accountId: "acct-durable", userId: "u", status: AccountStatus.SUSPENDED, statusReason: "fraud check" }));
  });
});
