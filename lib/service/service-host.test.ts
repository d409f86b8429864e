// The service host: health follows readiness and draining, calls before readiness answer
// UNAVAILABLE, in-flight calls finish on stop, and a service process drains and exits 0 on SIGTERM.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { healthStatus, waitForHealth } from "../../test/harness/grpc-probes.js";
import { hermeticEnv } from "../../test/harness/hermetic.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { nodeArgsFor } from "../devtools/service-command.js";
import { createClient } from "../grpc/index.js";
import { registration } from "./grpc-server.js";
import { startService, type ServiceModule } from "./service-host.js";

let nats: TestNatsServer;
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
});

/** A promise with its resolve function. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** An AccountService whose store opens when `storeReady` resolves and whose GetAccount waits for `release`. */
function slowModule(storeReady: Promise<void>, release: Promise<void>, entered: () => void): ServiceModule {
  return {
    name: "slow",
    defaultPort: 0,
    services: [AccountService],
    async create() {
      await storeReady;
      return {
        registrations: [
          registration(AccountService, {
            async getAccount(request) {
              entered();
              await release;
              return { account: { accountId: request.accountId, userId: "u", status: AccountStatus.ACTIVE } };
            },
            checkAccountStatus: (request) => ({ accountId: request.accountId, status: AccountStatus.ACTIVE, canOrder: true }),
            createAccount: (request) => ({ ...(request.account ? { account: request.account } : {}) }),
          }),
        ],
      };
    },
  };
}

describe("service host", () => {
  it("reports NOT_SERVING and answers UNAVAILABLE until its store is ready, then SERVING", async () => {
    const storeReady = deferred();
    const service = await startService(slowModule(storeReady.promise, Promise.resolve(), () => {}), {
      natsUrl: nats.url,
      port: 0,
      env: { INTERNAL_TLS: "off", ...hermeticEnv() },
      log: pino({ level: "silent" }),
    });
    const client = createClient(AccountService, { address: service.address });
    try {
      expect(await healthStatus(service.address)).toBe("NOT_SERVING");
      const early = await client.checkAccountStatus({ accountId: "a" }).catch((e: unknown) => e);
      expect(early).toBeInstanceOf(ConnectError);
      expect((early as ConnectError).code).toBe(Code.Unavailable);

      storeReady.resolve();
      await service.ready;
      expect(await healthStatus(service.address)).toBe("SERVING");
      expect(await healthStatus(service.address, "dronedelivery.account.v1.AccountService")).toBe("SERVING");
      expect((await client.checkAccountStatus({ accountId: "a" })).canOrder).toBe(true);
    } finally {
      client.close();
      await service.stop();
    }
  });

  it("goes NOT_SERVING on stop, lets an in-flight call finish, then refuses new calls", async () => {
    const release = deferred();
    const entered = deferred();
    const service = await startService(slowModule(Promise.resolve(), release.promise, entered.resolve), {
      natsUrl: nats.url,
      port: 0,
      env: { INTERNAL_TLS: "off", ...hermeticEnv() },
      log: pino({ level: "silent" }),
    });
    await service.ready;
    const client = createClient(AccountService, { address: service.address });
    const inFlight = client.getAccount({ accountId: "in-flight" });
    await entered.promise;

    const health = createClient(Health, { address: service.address });
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const stopped = service.stop(10_000, 300);
    // During the drain delay the server still answers, and health says NOT_SERVING.
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    health.close();
    release.resolve();
    const response = await inFlight;
    expect(response.account?.accountId).toBe("in-flight");
    await stopped;

    const after = await client.getAccount({ accountId: "late" }, { timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(after).toBeInstanceOf(ConnectError);
    expect([Code.Unavailable, Code.DeadlineExceeded]).toContain((after as ConnectError).code);
    client.close();
  });

  it("runs a service as a process that drains and exits 0 on SIGTERM", async () => {
    const root = join(import.meta.dirname, "..", "..");
    // Compiled when the build is current (make vitest builds first), else through tsx.
    const child = spawn(process.execPath, nodeArgsFor("services/account/main.ts"), {
      cwd: root,
      env: { ...process.env, ...hermeticEnv(), NATS_URL: nats.url, ACCOUNT_PORT: "0", LOG_LEVEL: "info", INTERNAL_TLS: "off" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      const address = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no address in output:\n${output}`)), 20_000);
        const check = () => {
          const match = /"address":"([^"]+)"/.exec(output);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        };
        child.stdout.on("data", check);
        check();
      });
      await waitForHealth(address, "SERVING", 20_000);
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      expect(output).toContain("draining");
      expect(output).toContain("stopped");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
