import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { ensureStreams, STREAMS, subjects } from "../lib/nats/streams.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function processAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    // A zombie still answers kill(0); look at its state as well.
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

describe("test harness nats-server", () => {
  const servers: TestNatsServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it("starts private servers in parallel, each on its own port and store", async () => {
    const started = await Promise.all([startNatsServer(), startNatsServer({ monitoring: true }), startNatsServer()]);
    servers.push(...started);
    expect(new Set(started.map((s) => s.port)).size).toBe(3);
    expect(new Set(started.map((s) => s.storeDir)).size).toBe(3);
    for (const s of started) {
      expect(s.url).toBe(`nats://127.0.0.1:${s.port}`);
      expect(processAlive(s.pid)).toBe(true);
    }
    const monitored = started[1];
    expect(monitored?.monitorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const varz = (await (await fetch(`${monitored?.monitorUrl}/varz`)).json()) as { jetstream?: unknown };
    expect(varz.jetstream).toBeDefined();
  });

  it("stop() ends the process and removes its directory", async () => {
    const server = await startNatsServer();
    const pid = server.pid;
    const root = path.dirname(server.storeDir);
    expect(existsSync(server.storeDir)).toBe(true);
    await server.stop();
    expect(processAlive(pid)).toBe(false);
    expect(existsSync(root)).toBe(false);
    await server.stop(); // idempotent
  });

  it("restart() keeps stream data and the URL", async () => {
    const server = await startNatsServer();
    servers.push(server);
    let nc = await connectNats({ url: server.url, name: "harness-restart-test" });
    await ensureStreams(await nc.jetstreamManager());
    const js = nc.jetstream();
    await js.publish(subjects.deliveryStatus("d-keep"), new TextEncoder().encode("stored before restart"), { msgID: "d-keep:1" });
    await drainQuietly(nc);

    const before = server.pid;
    await server.restart();
    expect(server.pid).not.toBe(before);
    expect(processAlive(before)).toBe(false);

    nc = await connectNats({ url: server.url, name: "harness-restart-test" });
    try {
      const jsm = await nc.jetstreamManager();
      const stored = await jsm.streams.getMessage("DELIVERY_STATUS", { last_by_subj: "delivery.d-keep.status" });
      expect(new TextDecoder().decode(stored.data)).toBe("stored before restart");
      expect((await ensureStreams(jsm)).every((r) => r.action === "unchanged")).toBe(true);
      // The duplicate window survives too.
      const again = await nc.jetstream().publish(subjects.deliveryStatus("d-keep"), new Uint8Array(), { msgID: "d-keep:1" });
      expect(again.duplicate).toBe(true);
    } finally {
      await drainQuietly(nc);
    }
  });

  it("a client reconnects by itself across a restart", async () => {
    const server = await startNatsServer();
    servers.push(server);
    const nc = await connectNats({ url: server.url, name: "harness-reconnect-test", reconnectTimeWait: 100, reconnectJitter: 0 });
    try {
      const reconnected = (async () => {
        for await (const status of nc.status()) if (status.type === "reconnect") return true;
        return false;
      })();
      await server.restart();
      // A request made while disconnected is buffered and can be lost on reconnect: wait for it.
      expect(await reconnected).toBe(true);
      const jsm = await nc.jetstreamManager();
      expect((await ensureStreams(jsm)).length).toBe(Object.keys(STREAMS).length);
    } finally {
      await drainQuietly(nc);
    }
  });

  it("rejects with the server's output when it cannot start", async () => {
    const err = await startNatsServer({ extraArgs: ["--no-such-flag"] }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/nats-server exited during startup/);
    expect(err?.message).toMatch(/no-such-flag/);
  });

  it("leaves nothing behind when the test process is killed", async () => {
    // A separate process starts a server, prints its pid and directory, then dies by SIGKILL.
    const script = `
      import { startNatsServer } from ${JSON.stringify(path.join(repoRoot, "test/harness/nats-server.ts"))};
      const s = await startNatsServer();
      console.log(JSON.stringify({ pid: s.pid, storeDir: s.storeDir }));
      process.kill(process.pid, "SIGKILL");
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    await new Promise((resolve) => child.on("close", resolve));
    const { pid, storeDir } = JSON.parse(out.trim()) as { pid: number; storeDir: string };
    expect(await waitUntil(() => !processAlive(pid), 10_000)).toBe(true);
    expect(await waitUntil(() => !existsSync(path.dirname(storeDir)), 10_000)).toBe(true);
  });
});
