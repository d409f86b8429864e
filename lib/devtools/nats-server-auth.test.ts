// launchNatsServer with users and permissions: the configuration file it writes, the server
// requiring credentials, and the same store read with and without authorization.
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NatsError } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import { ensureNatsAuth } from "../nats/auth.js";
import { connectNats, drainQuietly } from "../nats/connection.js";
import { ensureStreams } from "../nats/streams.js";
import { launchNatsServer, type RunningNatsServer } from "./nats-server.js";

const root = mkdtempSync(path.join(tmpdir(), "dd-nats-launch-"));
const running: RunningNatsServer[] = [];

afterAll(async () => {
  for (const server of running) await server.stop();
  rmSync(root, { recursive: true, force: true });
});

async function launch(options: Parameters<typeof launchNatsServer>[0]): Promise<RunningNatsServer> {
  const server = await launchNatsServer({ onParentExit: "SIGKILL", keepParentAlive: false, ...options });
  running.push(server);
  return server;
}

describe("launchNatsServer with auth", () => {
  it("writes a private configuration file with JetStream and the users, and requires credentials", async () => {
    const storeDir = path.join(root, "store-a");
    const auth = await ensureNatsAuth(path.join(root, "auth-a"));
    const server = await launch({ storeDir, auth });
    expect(server.auth).toBe(auth);
    expect(server.configFile).toBe(path.join(auth.dir, "nats-server.conf"));
    const configFile = server.configFile ?? "";
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    const config = await readFile(configFile, "utf8");
    expect(config).toContain(`store_dir: ${JSON.stringify(storeDir)}`);
    expect(config).toContain(auth.configText);

    const anonymous = await connectNats({ url: server.url, name: "anonymous", reconnect: false }).then(
      () => "connected",
      (e: unknown) => (e as NatsError).code,
    );
    expect(anonymous).toBe("AUTHORIZATION_VIOLATION");
    const admin = await connectNats({ url: server.url, name: "admin", reconnect: false, ...auth.credentialsOf("admin") });
    await ensureStreams(await admin.jetstreamManager());
    await drainQuietly(admin);
    await server.stop();
  });

  it("writes the configuration where it is told, and serves a store made without auth", async () => {
    const storeDir = path.join(root, "store-b");
    const open = await launch({ storeDir });
    expect(open.configFile).toBeUndefined();
    expect(open.auth).toBeUndefined();
    const first = await connectNats({ url: open.url, name: "setup", reconnect: false });
    await ensureStreams(await first.jetstreamManager());
    await drainQuietly(first);
    await open.stop();

    const auth = await ensureNatsAuth(path.join(root, "auth-b"));
    const configFile = path.join(root, "conf", "server.conf");
    const secured = await launch({ storeDir, auth, configFile });
    expect(secured.configFile).toBe(configFile);
    const delivery = await connectNats({ url: secured.url, name: "delivery", reconnect: false, ...auth.connectOptionsOf("delivery") });
    try {
      const results = await ensureStreams(await delivery.jetstreamManager());
      expect(results.every((r) => r.action === "unchanged")).toBe(true);
    } finally {
      await drainQuietly(delivery);
      await secured.stop();
    }
  });
});
