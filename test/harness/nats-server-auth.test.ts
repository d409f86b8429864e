// The test harness's nats-server with and without authorization: credentials per identity,
// connecting as an identity, and the environment a service needs to find its credentials.
import { existsSync } from "node:fs";
import path from "node:path";
import type { NatsError } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import { natsCredentialsFromEnv } from "../../lib/nats/auth.js";
import { connectNats, connectNatsAs, drainQuietly } from "../../lib/nats/connection.js";
import { NATS_IDENTITIES } from "../../lib/nats/permissions.js";
import { ensureStreams } from "../../lib/nats/streams.js";
import { startNatsServer, type TestNatsServer } from "./nats-server.js";

const servers: TestNatsServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

describe("startNatsServer without auth (the default)", () => {
  it("lets anyone connect, and tells services to connect without credentials", async () => {
    const server = await startNatsServer();
    servers.push(server);
    expect(server.authDir).toBeUndefined();
    expect(server.credentials("drone")).toBeUndefined();
    expect(server.serviceEnv).toEqual({ NATS_URL: server.url, NATS_AUTH: "off" });
    expect(natsCredentialsFromEnv(server.serviceEnv, "drone")).toBeUndefined();
    const nc = await server.connectAs("drone");
    try {
      await ensureStreams(await nc.jetstreamManager());
    } finally {
      await drainQuietly(nc);
    }
  });
});

describe("startNatsServer({ auth: true })", () => {
  it("requires credentials, gives each identity its own, and keeps them across restart()", async () => {
    const server = await startNatsServer({ auth: true });
    servers.push(server);
    expect(server.authDir).toBe(path.join(path.dirname(server.storeDir), "auth"));
    expect(server.serviceEnv).toEqual({ NATS_URL: server.url, NATS_AUTH: "on", NATS_AUTH_DIR: server.authDir });
    const passwords = new Set(NATS_IDENTITIES.map((id) => server.credentials(id)?.pass));
    expect(passwords.size).toBe(NATS_IDENTITIES.length);

    const refused = await connectNats({ url: server.url, name: "anonymous", reconnect: false }).then(
      () => "connected",
      (e: unknown) => (e as NatsError).code,
    );
    expect(refused).toBe("AUTHORIZATION_VIOLATION");

    const admin = await server.connectAs("admin");
    await ensureStreams(await admin.jetstreamManager());
    await drainQuietly(admin);

    const before = server.credentials("scheduler");
    await server.restart();
    expect(server.credentials("scheduler")).toEqual(before);
    // A service finds its credentials from serviceEnv alone, as the service host does.
    const scheduler = await connectNatsAs("scheduler", server.serviceEnv);
    try {
      const info = await (await scheduler.jetstreamManager()).streams.info("DELIVERY_REQUESTS");
      expect(info.config.name).toBe("DELIVERY_REQUESTS");
    } finally {
      await drainQuietly(scheduler);
    }
  });

  it("removes the credentials with the server", async () => {
    const server = await startNatsServer({ auth: true });
    const authDir = server.authDir ?? "";
    expect(existsSync(path.join(authDir, "nats-users.json"))).toBe(true);
    await server.stop();
    expect(existsSync(authDir)).toBe(false);
  });
});
