// `make run` with NATS_CLUSTER_SIZE=3 (scripts/run.ts): three clustered nats-servers on private
// ports in a temp RUN_DIR, the streams created at 3 replicas, and never lowered when the next run
// asks for 1. Every run is stopped by its process group after the test, passed or failed.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { resolveNatsServerBin } from "../lib/devtools/nats-server.js";
import { STREAM_DEFINITIONS } from "../lib/nats/streams.js";
import { processesMentioning } from "./harness/processes.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tempDirs: string[] = [];
const children = new Set<ChildProcess>();

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `count` first ports of runs of three free ports in a row (node i uses base + i - 1). */
async function freeRuns(count: number): Promise<number[]> {
  const bases: number[] = [];
  while (bases.length < count) {
    // Below Linux's ephemeral range (32768-), which the nodes' outgoing route connections use.
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    if (bases.some((b) => Math.abs(b - base) < 3)) continue;
    if ((await Promise.all([0, 1, 2].map((i) => portFree(base + i)))).every(Boolean)) bases.push(base);
  }
  return bases;
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {
    // Gone.
  }
}


/** Runs scripts/run.ts to completion (RUN_EXIT_AFTER_READY) in its own process group. */
async function runOnce(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, nodeArgsFor("scripts/run.ts"), {
    cwd: repoRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      RUN_STOP_TIMEOUT_MS: "5000",
      RUN_EXIT_AFTER_READY: "1",
      NATS_AUTH_DIR: "",
      INTERNAL_PKI_DIR: "",
      GATEWAY_DEV_SECRET_FILE: "",
      NATS_REPLICAS: "",
      // The server this machine has, named: a replicated run would otherwise fetch a 2.10 one.
      NATS_SERVER_BIN: resolveNatsServerBin(),
      ...env,
    },
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  try {
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    return { code, stdout, stderr };
  } finally {
    killGroup(child);
    children.delete(child);
  }
}

afterAll(() => {
  for (const child of children) killGroup(child);
  for (const dir of tempDirs) {
    for (const { pid } of processesMentioning(dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("make run with NATS_CLUSTER_SIZE=3", () => {
  it("starts three clustered nodes, creates the streams at 3 replicas, and a run asking for 1 lowers none", { timeout: 240_000 }, async () => {
    const [natsPort = 0, httpPort = 0, clusterPort = 0] = await freeRuns(3);
    const runDir = tempDir("dd-run-cluster-");
    const servicesDir = tempDir("dd-run-cluster-services-");
    const env = {
      NATS_CLUSTER_SIZE: "3",
      NATS_PORT: String(natsPort),
      NATS_HTTP_PORT: String(httpPort),
      NATS_CLUSTER_PORT: String(clusterPort),
      RUN_DIR: runDir,
      RUN_SERVICES_DIR: servicesDir,
    };

    const first = await runOnce(env);
    const output = first.stdout + first.stderr;
    expect(first.code, output).toBe(0);
    for (let i = 0; i < 3; i++) {
      expect(first.stdout).toContain(`n${i + 1}  nats://127.0.0.1:${natsPort + i}   monitoring http://127.0.0.1:${httpPort + i}`);
      expect(existsSync(path.join(runDir, "nats", `n${i + 1}`, "jetstream"))).toBe(true);
      const config = readFileSync(path.join(runDir, "nats", `n${i + 1}.conf`), "utf8");
      expect(config).toContain(`listen: "127.0.0.1:${clusterPort + i}"`);
      for (let j = 0; j < 3; j++) expect(config).toContain(`"nats-route://127.0.0.1:${clusterPort + j}"`);
      expect(config).toContain("authorization");
      expect(readFileSync(path.join(runDir, "logs", `nats-server-n${i + 1}.log`), "utf8")).toContain("Server is ready");
    }
    expect(first.stdout).toMatch(/streams created: DELIVERY_REQUESTS, WORKFLOW_FAILURES/);
    expect(first.stdout).toContain("(3 replicas asked)");
    // The revision-check probe ran (its verdict depends on the nats-server release).
    expect(output).toMatch(/revision-checked KV updates (are enforced at 3 replicas|at 3 replicas)/);
    expect(existsSync(path.join(runDir, "pids.json"))).toBe(false);

    // Started again asking for 1 replica: every stream stays at 3.
    const second = await runOnce({ ...env, NATS_REPLICAS: "1" });
    expect(second.code, second.stdout + second.stderr).toBe(0);
    for (const def of STREAM_DEFINITIONS) {
      expect(second.stdout).toContain(`stream ${def.name}: num_replicas stays 3 (asked 1): the platform never lowers it`);
    }
    expect(second.stdout).toMatch(/streams unchanged: DELIVERY_REQUESTS/);
    expect(processesMentioning(runDir)).toEqual([]);
  });

  it("refuses more replicas than nodes, naming the variables", { timeout: 60_000 }, async () => {
    const runDir = tempDir("dd-run-cluster-");
    const result = await runOnce({ NATS_CLUSTER_SIZE: "1", NATS_REPLICAS: "3", RUN_DIR: runDir, RUN_SERVICES_DIR: tempDir("dd-run-cluster-services-") });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/NATS_REPLICAS=3 needs at least 3 nats-servers, and NATS_CLUSTER_SIZE is 1/);
  });
});
