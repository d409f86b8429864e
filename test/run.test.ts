// scripts/run.ts (`make run`) as a user runs it: its own process group, private ports and a temp
// RUN_DIR. Every run a test starts is stopped by its process group after the test, also when it
// failed or timed out, and whatever it left (found by its temp folders) is killed.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import { natsCredentialsFromEnv } from "../lib/nats/auth.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { STREAMS } from "../lib/nats/streams.js";
import { ensureDevPki, PKI_IDENTITIES } from "../lib/security/index.js";
import { waitForHealth } from "../lib/service/health-probe.js";
import { freePort, isFree } from "./harness/ports.js";
import { processesMentioning } from "./harness/processes.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/**
 * Ports free right now (and, with `alsoPlus`, free at port + alsoPlus too), below the ephemeral
 * range (test/harness/ports.ts), so that no outgoing connection takes one before the run binds it.
 */
async function freePorts(count: number, alsoPlus?: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (alsoPlus === undefined || (await isFree(port + alsoPlus))) ports.push(port);
  }
  return ports;
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until nothing mentions any of `needles`. */
async function noProcessesLeft(needles: readonly string[], timeoutMs = 15_000): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = needles.flatMap((n) => processesMentioning(n)).map((p) => `${p.pid}: ${p.cmdline}`);
    if (left.length === 0 || Date.now() > until) return left;
    await sleep(100);
  }
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
  /** A development PKI made beforehand (default: the run makes its own under RUN_DIR). */
  pkiDir?: string;
  extra?: Record<string, string>;
}

let sharedPki: Promise<string> | undefined;

/**
 * One development PKI for the runs that do not look at it, made once for the file: making the
 * certificates is the heaviest part of a run's start, and the runs of this file start together.
 */
function sharedPkiDir(): Promise<string> {
  sharedPki ??= (async () => {
    const dir = tempDir("dd-run-pki-");
    await ensureDevPki(dir, PKI_IDENTITIES);
    return dir;
  })();
  return sharedPki;
}

interface Run {
  child: ChildProcess;
  result: Promise<RunResult>;
  output: () => string;
  needles: string[];
}

/** Every run started and not yet cleaned up. */
const runs = new Set<Run>();

function startRun(context: TestContext, how: "npx" | "node", env: RunEnv): Run {
  const [command, args] =
    how === "npx" ? ["npx", ["tsx", "scripts/run.ts"]] : [process.execPath, nodeArgsFor("scripts/run.ts")];
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
      NATS_AUTH_DIR: "",
      INTERNAL_PKI_DIR: env.pkiDir ?? "",
      GATEWAY_DEV_SECRET_FILE: "",
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
  const run: Run = { child, result, output: () => stdout + stderr, needles: [env.runDir, env.servicesDir] };
  runs.add(run);
  // After the test, passed, failed or timed out (and in afterAll, as a last resort).
  context.onTestFinished(() => cleanUp(run), 30_000);
  return run;
}

/** Stops a run by its process group (SIGTERM, then SIGKILL), then kills whatever it left. */
async function cleanUp(run: Run): Promise<void> {
  runs.delete(run);
  const pgid = run.child.pid;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (pgid) process.kill(-pgid, signal);
    } catch {
      // Gone.
    }
  };
  if (run.child.exitCode === null && run.child.signalCode === null) {
    signalGroup("SIGTERM");
    await Promise.race([run.result, sleep(8_000)]);
  }
  signalGroup("SIGKILL");
  // Its children watch it and stop within RUN_STOP_TIMEOUT_MS; whatever is still there is killed.
  const left = await noProcessesLeft(run.needles, 6_000);
  for (const line of left) {
    try {
      process.kill(Number(line.split(":")[0]), "SIGKILL");
    } catch {
      // Gone.
    }
  }
}

afterAll(async () => {
  await Promise.all([...runs].map(cleanUp));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}, 30_000);

async function waitFor(check: () => boolean, timeoutMs: number, what: string, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output so far:\n${output()}`);
    await sleep(50);
  }
}

function writeService(servicesDir: string, name: string, body: string): void {
  mkdirSync(path.join(servicesDir, name), { recursive: true });
  writeFileSync(path.join(servicesDir, name, "main.ts"), body);
}

interface PidFile {
  nats: { pid: number | null; restarts: number };
  instances: Record<string, { pid: number | null; pgid: number | null; restarts: number; address: string | null }>;
}

function readPids(runDir: string): PidFile | undefined {
  try {
    return JSON.parse(readFileSync(path.join(runDir, "pids.json"), "utf8")) as PidFile;
  } catch {
    return undefined;
  }
}

async function pidsWhen(runDir: string, check: (pids: PidFile) => boolean, what: string, output: () => string): Promise<PidFile> {
  let found: PidFile | undefined;
  await waitFor(() => (found = readPids(runDir)) !== undefined && check(found), 60_000, what, output);
  return found!;
}

describe.concurrent("scripts/run.ts (make run)", () => {
  it("starts nats-server with the streams, prints the table, and stops cleanly (RUN_EXIT_AFTER_READY)", { timeout: 90_000 }, async (context) => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const runDir = tempDir("dd-run-");
    const servicesDir = tempDir("dd-run-services-");
    const pkiDir = await sharedPkiDir();
    const run = startRun(context, "npx", { natsPort, httpPort, runDir, servicesDir, pkiDir, extra: { RUN_EXIT_AFTER_READY: "1" } });
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
    // The pid file goes with a clean stop.
    expect(existsSync(path.join(runDir, "pids.json"))).toBe(false);
    expect(await noProcessesLeft([runDir])).toEqual([]);
  });

  it("starts services with NATS_URL and SERVICE_NAME, prefixes their output, and stops them before NATS on Ctrl-C", { timeout: 90_000 }, async (context) => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const runDir = tempDir("dd-run-");
    const servicesDir = tempDir("dd-run-services-");
    writeService(
      servicesDir,
      "alpha",
      `process.on("SIGTERM", () => { setTimeout(() => { console.log("alpha drained"); process.exit(0); }, 100); });
       console.log("env " + process.env.SERVICE_NAME + " " + process.env.NATS_URL);
       setInterval(() => {}, 1000);`,
    );
    writeService(
      servicesDir,
      "stubborn",
      `process.on("SIGTERM", () => console.log("stubborn ignores SIGTERM"));
       console.error("stubborn up");
       setInterval(() => {}, 1000);`,
    );
    // Each installs its SIGTERM handler before it says it is up: the test stops the run as soon as
    // both said so, and a process paused right after its first line would otherwise die of it.
    mkdirSync(path.join(servicesDir, "not-a-service"));

    const run = startRun(context, "node", { natsPort, httpPort, runDir, servicesDir, pkiDir: await sharedPkiDir() });
    await waitFor(() => run.output().includes("stubborn up") && run.output().includes("env alpha"), 60_000, "services", run.output);
    await waitFor(() => run.output().includes("Press Ctrl-C to stop."), 60_000, "the table", run.output);
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
    // Stopping on request is not a crash: nothing is restarted.
    expect(stderr).not.toContain("exited unexpectedly");
    expect(readFileSync(path.join(runDir, "logs", "alpha.log"), "utf8")).toContain("alpha drained");
    expect(await noProcessesLeft([runDir, servicesDir])).toEqual([]);
  });

  it("restarts a service that exits with a doubling, capped back-off, and nats-server on the same store", { timeout: 90_000 }, async (context) => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const runDir = tempDir("dd-run-");
    const servicesDir = tempDir("dd-run-services-");
    // Exits with status 3 on its first three runs, then stays up.
    const counter = path.join(runDir, "crashy-runs");
    writeService(
      servicesDir,
      "crashy",
      `import { existsSync, readFileSync, writeFileSync } from "node:fs";
       const file = ${JSON.stringify(counter)};
       const runs = (existsSync(file) ? Number(readFileSync(file, "utf8")) : 0) + 1;
       writeFileSync(file, String(runs));
       console.log("crashy run " + runs);
       if (runs <= 3) setTimeout(() => process.exit(3), 50);
       else setInterval(() => {}, 1000);`,
    );
    const run = startRun(context, "node", {
      natsPort,
      httpPort,
      runDir,
      servicesDir,
      pkiDir: await sharedPkiDir(),
      extra: { RUN_RESTART_MIN_MS: "200", RUN_RESTART_MAX_MS: "400" },
    });
    await waitFor(() => run.output().includes("crashy run 4"), 60_000, "the fourth run", run.output);
    const err = () => run.output();
    expect(err()).toMatch(/crashy \(pid \d+\) exited unexpectedly at [\d:.]+ \(status 3\) .*restarting it in 0\.2 s.*\(restart 1\)/);
    expect(err()).toMatch(/restarting it in 0\.4 s.*\(restart 2\)/);
    // Capped at RUN_RESTART_MAX_MS.
    expect(err()).toMatch(/restarting it in 0\.4 s.*\(restart 3\)/);
    const pids = await pidsWhen(runDir, (p) => p.instances["crashy"]?.restarts === 3 && p.instances["crashy"]?.pid != null, "pids.json", run.output);

    // nats-server dies: it comes back on the same port with the same store (the streams are there).
    const natsPid = pids.nats.pid;
    expect(natsPid).toBeGreaterThan(0);
    process.kill(natsPid!, "SIGKILL");
    await waitFor(() => run.output().includes("nats-server restarted"), 60_000, "nats-server to come back", run.output);
    expect(run.output()).toMatch(/nats-server exited unexpectedly at [\d:.]+ \(signal SIGKILL\)/);
    const after = await pidsWhen(runDir, (p) => p.nats.restarts === 1 && p.nats.pid !== null && p.nats.pid !== natsPid, "the new nats pid", run.output);
    expect(after.instances["crashy"]?.pid).toBe(pids.instances["crashy"]?.pid);
    const nc = await connectNats({
      url: `nats://127.0.0.1:${natsPort}`,
      name: "run-test",
      maxReconnectAttempts: 0,
      ...natsCredentialsFromEnv({ NATS_AUTH_DIR: path.join(runDir, "nats-auth") }, "admin"),
    });
    try {
      const jsm = await nc.jetstreamManager();
      expect((await jsm.streams.info(STREAMS.DELIVERY_REQUESTS.name)).config.name).toBe(STREAMS.DELIVERY_REQUESTS.name);
    } finally {
      await drainQuietly(nc);
    }

    process.kill(-(run.child.pid ?? 0), "SIGINT");
    const { code } = await run.result;
    expect(code).toBe(0);
    expect(await noProcessesLeft([runDir, servicesDir])).toEqual([]);
  });

  it("brings a real service back to SERVING after it or nats-server is SIGKILLed", { timeout: 120_000 }, async (context) => {
    const [natsPort = 0, httpPort = 0] = await freePorts(2);
    const [accountPort = 0] = await freePorts(1, 1000);
    const runDir = tempDir("dd-run-");
    // Only the Account service (the real one), so that the test stays light.
    const servicesDir = tempDir("dd-run-services-");
    symlinkSync(path.join(repoRoot, "services", "account"), path.join(servicesDir, "account"));
    const run = startRun(context, "node", {
      natsPort,
      httpPort,
      runDir,
      servicesDir,
      extra: { ACCOUNT_PORT: String(accountPort), RUN_RESTART_MIN_MS: "200", LOG_LEVEL: "info" },
    });
    await waitFor(() => run.output().includes("Press Ctrl-C to stop."), 60_000, "the table", run.output);
    const address = `127.0.0.1:${accountPort}`;
    const probeEnv = { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: path.join(runDir, "pki") };
    expect(run.output()).toMatch(/account\s+127\.0\.0\.1:\d+\s+SERVING/);

    const first = await pidsWhen(runDir, (p) => (p.instances["account"]?.pid ?? null) !== null, "the account pid", run.output);
    process.kill(first.instances["account"]!.pid!, "SIGKILL");
    await waitFor(() => run.output().includes("[run] account is SERVING again"), 60_000, "account to come back", run.output);
    expect(run.output()).toMatch(/account \(pid \d+\) exited unexpectedly at [\d:.]+ \(signal SIGKILL\)/);
    const second = await pidsWhen(runDir, (p) => p.instances["account"]?.restarts === 1 && p.instances["account"]?.pid != null, "the new account pid", run.output);
    expect(second.instances["account"]!.pid).not.toBe(first.instances["account"]!.pid);
    expect((await waitForHealth(address, { timeoutMs: 20_000, env: probeEnv })).ok).toBe(true);

    process.kill(second.nats.pid!, "SIGKILL");
    await waitFor(() => run.output().includes("nats-server restarted"), 60_000, "nats-server to come back", run.output);
    // The service reconnects by itself (same process), and answers SERVING again.
    await waitFor(() => run.output().includes("NATS connection back: SERVING"), 60_000, "account to reconnect", run.output);
    expect((await waitForHealth(address, { timeoutMs: 20_000, env: probeEnv })).ok).toBe(true);
    expect(readPids(runDir)?.instances["account"]?.pid).toBe(second.instances["account"]!.pid);

    process.kill(-(run.child.pid ?? 0), "SIGINT");
    const { code } = await run.result;
    expect(code).toBe(0);
    expect(await noProcessesLeft([runDir, servicesDir])).toEqual([]);
  });

  it("explains a port that is already taken", async (context) => {
    const [httpPort = 0] = await freePorts(1);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    const natsPort = address && typeof address === "object" ? address.port : 0;
    try {
      const runDir = tempDir("dd-run-");
      const run = startRun(context, "node", { natsPort, httpPort, runDir, servicesDir: tempDir("dd-run-services-") });
      const { code, stderr } = await run.result;
      expect(code).toBe(1);
      expect(stderr).toMatch(/already taken/);
      expect(stderr).toMatch(/NATS_PORT/);
      expect(await noProcessesLeft([runDir])).toEqual([]);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
