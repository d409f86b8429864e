import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Ports the OS reports free right now. */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    const address = server.address();
    if (address && typeof address === "object") ports.push(address.port);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Processes whose command line mentions `needle`, except supervising shells. */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (cmdline.includes(needle) && !/^\d+ \(.*\) Z/.test(stat)) found.push(`${entry}: ${cmdline}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface RunEnv {
  natsPort: number;
  httpPort: number;
  runDir: string;
  servicesDir: string;
  extra?: Record<string, string>;
}

function startRun(how: "npx" | "node", env: RunEnv): { child: ChildProcess; result: Promise<RunResult>; output: () => string } {
  const [command, args] =
    how === "npx" ? ["npx", ["tsx", "scripts/run.ts"]] : [process.execPath, ["--import", "tsx", "scripts/run.ts"]];
  const child = spawn(command as string, args as string[], {
    cwd: repoRoot,
    // Own process group, like a terminal job: a "Ctrl-C" is sent to the whole group.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      NATS_PORT: String(env.natsPort),
      NATS_HTTP_PORT: String(env.httpPort),
      RUN_DIR: env.runDir,
      RUN_SERVICES_DIR: env.servicesDir,
      RUN_STOP_TIMEOUT_MS: "3000",
      ...env.extra,
    },
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const result = new Promise<RunResult>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, result, output: () => stdout + stderr };
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output so far:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function writeService(servicesDir: string, name: string, body: string): void {
  mkdirSync(path.join(servicesDir, name), { recursive: true });
  writeFileSync(path.join(servicesDir, name, "main.ts"), body);
}

describe("scripts/run.ts (make run)", () => {
  it("starts nats-server with the streams, prints the table, and stops cleanly (RUN_EXIT_AFTER_READY)", async () => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const runDir = tempDir("dd-run-");
    const servicesDir = tempDir("dd-run-services-");
    const run = startRun("npx", { natsPort, httpPort, runDir, servicesDir, extra: { RUN_EXIT_AFTER_READY: "1" } });
    const { code, stdout, stderr } = await run.result;

    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toContain("Drone delivery platform is running");
    expect(stdout).toContain(`nats://127.0.0.1:${natsPort}`);
    expect(stdout).toContain(`http://127.0.0.1:${httpPort}`);
    expect(stdout).toMatch(/streams\s+DELIVERY_REQUESTS, WORKFLOW_FAILURES, DRONE_TELEMETRY, DELIVERY_STATUS/);
    expect(stdout).toMatch(/services\s+none yet/);
    expect(stdout).toContain("Press Ctrl-C to stop.");
    expect(stdout).toContain("[run] stopped");

    expect(existsSync(path.join(runDir, "nats", "jetstream"))).toBe(true);
    expect(readFileSync(path.join(runDir, "logs", "nats-server.log"), "utf8")).toContain("Server is ready");
    expect(processesMentioning(runDir)).toEqual([]);
  });

  it("starts services with NATS_URL and SERVICE_NAME, prefixes their output, and stops them before NATS on Ctrl-C", async () => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const runDir = tempDir("dd-run-");
    const servicesDir = tempDir("dd-run-services-");
    writeService(
      servicesDir,
      "alpha",
      `console.log("env " + process.env.SERVICE_NAME + " " + process.env.NATS_URL);
       process.on("SIGTERM", () => { setTimeout(() => { console.log("alpha drained"); process.exit(0); }, 100); });
       setInterval(() => {}, 1000);`,
    );
    writeService(
      servicesDir,
      "stubborn",
      `console.error("stubborn up");
       process.on("SIGTERM", () => console.log("stubborn ignores SIGTERM"));
       setInterval(() => {}, 1000);`,
    );
    mkdirSync(path.join(servicesDir, "not-a-service"));

    const run = startRun("node", { natsPort, httpPort, runDir, servicesDir });
    await waitFor(() => run.output().includes("stubborn up") && run.output().includes("env alpha"), 20_000, "services", run.output);
    const out = run.output();
    expect(out).toMatch(/services\s+alpha\s+.*pid \d+/);
    expect(out).toMatch(/^\s+stubborn\s+.*pid \d+/m);
    expect(out).not.toContain("not-a-service");
    expect(out).toContain(`[alpha]    env alpha nats://127.0.0.1:${natsPort}`);
    expect(out).toContain("[stubborn] stubborn up");

    process.kill(-(run.child.pid ?? 0), "SIGINT");
    const { code, stdout, stderr } = await run.result;
    expect(code, stdout + stderr).toBe(0);
    // Services first (alpha drains, stubborn is killed after RUN_STOP_TIMEOUT_MS), then NATS.
    const drained = stdout.indexOf("[alpha]    alpha drained");
    const natsStop = stdout.indexOf("[run] stopping nats-server");
    expect(drained).toBeGreaterThan(0);
    expect(natsStop).toBeGreaterThan(drained);
    expect(stdout).toContain("[stubborn] stubborn ignores SIGTERM");
    expect(stderr).toContain("stubborn did not stop within 3000 ms and was killed");
    expect(readFileSync(path.join(runDir, "logs", "alpha.log"), "utf8")).toContain("alpha drained");
    expect(processesMentioning(runDir)).toEqual([]);
    expect(processesMentioning(servicesDir)).toEqual([]);
  });

  it("stops everything and exits non-zero when nats-server dies", async () => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const runDir = tempDir("dd-run-");
    const servicesDir = tempDir("dd-run-services-");
    writeService(servicesDir, "alpha", `console.log("alpha up"); setInterval(() => {}, 1000);`);
    const run = startRun("node", { natsPort, httpPort, runDir, servicesDir });
    await waitFor(() => run.output().includes("alpha up"), 20_000, "the service", run.output);

    const server = processesMentioning(runDir).find((p) => /^\d+: \S*nats-server /.test(p));
    expect(server).toBeDefined();
    process.kill(Number(server?.split(":")[0]), "SIGKILL");

    const { code, stderr } = await run.result;
    expect(code).toBe(1);
    expect(stderr).toMatch(/nats-server exited unexpectedly \(signal SIGKILL\)/);
    expect(stderr).toContain("Server is ready");
    expect(processesMentioning(runDir)).toEqual([]);
    expect(processesMentioning(servicesDir)).toEqual([]);
  });

  it("explains a port that is already taken", async () => {
    const [httpPort = 0] = await freePorts(1);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    const natsPort = address && typeof address === "object" ? address.port : 0;
    try {
      const runDir = tempDir("dd-run-");
      const run = startRun("node", { natsPort, httpPort, runDir, servicesDir: tempDir("dd-run-services-") });
      const { code, stderr } = await run.result;
      expect(code).toBe(1);
      expect(stderr).toMatch(/already taken/);
      expect(stderr).toMatch(/NATS_PORT/);
      expect(processesMentioning(runDir)).toEqual([]);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
