/**
 * `make bench`: the platform's performance report.
 *
 * Runs the benchmark scripts one after the other, each as its own process with its output shown
 * as it comes, all recording their figures (bench/results.ts) into one temporary directory
 * (`BENCH_RESULTS_DIR`). Then prints one table of every recorded figure (figure, platform,
 * baseline, ratio, goal, met) and writes `bench/results.json`: the machine it ran on (CPU model,
 * cores, memory, Node.js, nats-server and h2load versions), the date, how each benchmark ended
 * and every figure.
 *
 * Exits non-zero when a benchmark failed (it exited non-zero: request errors, or it could not
 * run); a goal that is not met is reported in the table, not as a failure.
 *
 * Environment:
 *   BENCH_ONLY=http,telemetry    run only these benchmarks (names: http, telemetry, layer, assign,
 *                                workflow, balancing); default all
 *   BENCH_SCRIPT_TIMEOUT_S=300   a benchmark still running after this long is stopped (and fails)
 *   BENCH_RESULTS_FILE           where to write the report (default bench/results.json)
 * Every other BENCH_* setting reaches the benchmarks unchanged (see each script's header).
 */
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { resolveNatsServerBin } from "../lib/devtools/nats-server.js";
import { nodeArgsFor, REPO_ROOT } from "../lib/devtools/service-command.js";
import { h2loadVersion } from "./h2load.js";
import { formatRatio, readFigures, type Figure } from "./results.js";

/** The benchmarks in the order they run: name -> script. */
const BENCHMARKS: readonly (readonly [string, string])[] = [
  ["http", "bench/http.ts"],
  ["telemetry", "bench/telemetry.ts"],
  ["layer", "bench/layer.ts"],
  ["assign", "bench/assign.ts"],
  ["workflow", "bench/workflow.ts"],
  ["balancing", "bench/balancing.ts"],
];

const TIMEOUT_S = Number(process.env["BENCH_SCRIPT_TIMEOUT_S"] ?? 300);
const RESULTS_FILE = path.resolve(REPO_ROOT, process.env["BENCH_RESULTS_FILE"]?.trim() || "bench/results.json");

interface Outcome {
  readonly name: string;
  readonly script: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly seconds: number;
  readonly timedOut: boolean;
}

function selected(): (readonly [string, string])[] {
  const only = (process.env["BENCH_ONLY"] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = only.filter((name) => !BENCHMARKS.some(([n]) => n === name));
  if (unknown.length > 0) {
    throw new Error(`BENCH_ONLY names unknown benchmarks: ${unknown.join(", ")} (known: ${BENCHMARKS.map(([n]) => n).join(", ")})`);
  }
  return BENCHMARKS.filter(([name]) => only.length === 0 || only.includes(name));
}

let current: ReturnType<typeof spawn> | undefined;
/** Set on SIGINT / SIGTERM: no further benchmark starts. */
let stopping = false;

/** Runs one benchmark script with the output shown as it comes; stops it after TIMEOUT_S. */
function runScript(name: string, script: string, resultsDir: string): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, nodeArgsFor(script), {
      cwd: REPO_ROOT,
      env: { ...process.env, BENCH_RESULTS_DIR: resultsDir },
      stdio: "inherit",
    });
    current = child;
    let timedOut = false;
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`[bench] ${script} still running after ${TIMEOUT_S} s: stopping it`);
      child.kill("SIGTERM");
      kill = setTimeout(() => child.kill("SIGKILL"), 20_000);
    }, TIMEOUT_S * 1000);
    const done = (exitCode: number | null, signal: string | null) => {
      clearTimeout(timer);
      clearTimeout(kill);
      current = undefined;
      resolve({ name, script, exitCode, signal, seconds: (Date.now() - started) / 1000, timedOut });
    };
    child.on("error", (error) => {
      console.error(`[bench] ${script} did not start: ${error.message}`);
      done(null, null);
    });
    child.on("exit", (code, signal) => done(code, signal));
  });
}

function firstLine(command: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 10_000 }, (error, stdout) => resolve(error ? undefined : stdout.trim().split("\n")[0]));
  });
}

async function machine() {
  const cpus = os.cpus();
  let natsServer: string | undefined;
  try {
    natsServer = (await firstLine(resolveNatsServerBin(), ["--version"]))?.replace(/^nats-server:\s*/, "");
  } catch {
    natsServer = undefined;
  }
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    natsServer: natsServer ?? "not found",
    h2load: (await h2loadVersion()) ?? "not found",
  };
}

const MET: Record<string, string> = { true: "yes", false: "NO", null: "-" };

/** The one table: a row per figure, columns padded to their widest cell. */
function printReport(figures: readonly (Figure & { source: string })[]): void {
  const header = ["figure", "platform", "baseline", "ratio", "goal", "met"];
  const rows = figures.map((f) => [f.figure, f.platform, f.baseline, formatRatio(f.ratio), f.goal, MET[String(f.met)] ?? "-"]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  console.log(line(header));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const row of rows) console.log(line(row));
}

async function main(): Promise<number> {
  const benchmarks = selected();
  const resultsDir = await mkdtemp(path.join(os.tmpdir(), "bench-results-"));
  const date = new Date();
  const started = Date.now();
  const outcomes: Outcome[] = [];
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.error(`[bench] ${signal}: stopping`);
    // The running benchmark stops what it started; wait for it (bounded) before leaving.
    const child = current;
    const exited = child && child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once("exit", r)) : Promise.resolve();
    child?.kill("SIGTERM");
    const killer = setTimeout(() => child?.kill("SIGKILL"), 30_000);
    void exited
      .then(() => rm(resultsDir, { recursive: true, force: true }))
      .finally(() => {
        clearTimeout(killer);
        process.exit(130);
      });
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    for (const [name, script] of benchmarks) {
      if (stopping) return new Promise<number>(() => {});
      if (!existsSync(path.join(REPO_ROOT, script))) {
        console.log(`[bench] ${script} does not exist: skipped`);
        continue;
      }
      console.log(`\n[bench] ===== ${name} (${script}) =====`);
      const outcome = await runScript(name, script, resultsDir);
      // Interrupted: the signal handler finishes and exits.
      if (stopping) return new Promise<number>(() => {});
      outcomes.push(outcome);
      const how = outcome.exitCode === 0 ? "ok" : outcome.signal ? `killed (${outcome.signal})` : `FAILED (exit ${outcome.exitCode})`;
      console.log(`[bench] ${name}: ${how} in ${outcome.seconds.toFixed(0)} s`);
    }

    const recorded = await readFigures(resultsDir);
    const figures = recorded.flatMap(({ source, figures: f }) => f.map((figure) => ({ ...figure, source })));
    const failed = outcomes.filter((o) => o.exitCode !== 0);
    const silent = outcomes.filter((o) => !recorded.some((r) => r.source === o.name));
    const info = await machine();

    console.log(
      `\nPerformance report, ${date.toISOString()}: ${info.cpuModel}, ${info.cores} cores, ${info.memory}, ` +
        `Node.js ${info.node}, nats-server ${info.natsServer}, h2load ${info.h2load}\n`,
    );
    if (figures.length > 0) printReport(figures);
    else console.log("(no figures recorded)");
    if (silent.length > 0) console.log(`\nrecorded no figures: ${silent.map((o) => o.name).join(", ")}`);
    const unmet = figures.filter((f) => f.met === false);
    if (unmet.length > 0) console.log(`goals not met: ${unmet.map((f) => f.id).join(", ")}`);

    const report = {
      date: date.toISOString(),
      seconds: Math.round((Date.now() - started) / 1000),
      machine: info,
      only: process.env["BENCH_ONLY"]?.trim() || null,
      benchmarks: outcomes.map((o) => ({
        name: o.name,
        script: o.script,
        ok: o.exitCode === 0,
        exitCode: o.exitCode,
        signal: o.signal,
        timedOut: o.timedOut,
        seconds: Math.round(o.seconds),
      })),
      figures,
    };
    await writeFile(RESULTS_FILE, JSON.stringify(report, null, 2) + "\n");
    const shown = path.relative(process.cwd(), RESULTS_FILE);
    console.log(`\n${shown.startsWith("..") ? RESULTS_FILE : shown} written; the whole run took ${report.seconds} s`);
    if (failed.length > 0) {
      console.error(`[bench] failed: ${failed.map((o) => `${o.name} (${o.timedOut ? "timed out" : o.signal ?? `exit ${o.exitCode}`})`).join(", ")}`);
      return 1;
    }
    return 0;
  } finally {
    await rm(resultsDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`[bench] ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
