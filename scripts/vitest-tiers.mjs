#!/usr/bin/env node
/**
 * `make vitest`: the suite's two tiers (vitest.config.ts projects `fast` and `slow`) started
 * together, each in its own vitest process with its own number of workers, so that the few long
 * fault tests (whole platforms started, killed and restarted) run beside the many short ones
 * instead of after them.
 *
 *   node scripts/vitest-tiers.mjs [vitest flags...]
 *
 * The flags (make's VITEST_FLAGS) go to both tiers: filters, `-t`, `--bail` and console reporters
 * (default, verbose, dot, ...) as given. A reporter that writes a file (json, junit, tap, ... with
 * `--outputFile.<name>=<file>`) is not given to the tiers: each tier records its results as a blob
 * report, and once both have ended, vitest merges the two into that reporter's one file, as if one
 * run had made it (`--reporter=json --outputFile.json=report.json` counts every test of both).
 *
 * Workers: VITEST_FAST_WORKERS (default 3) and VITEST_SLOW_WORKERS (default 2). Most tests wait on
 * sockets, timers and child processes rather than on the CPU, so more workers than cores pay.
 * Exits non-zero when either tier or the merge fails. SIGINT, SIGTERM and SIGHUP are passed on to
 * both tiers.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const VITEST = path.join(ROOT, "node_modules", "vitest", "vitest.mjs");
const TIERS = [
  { name: "slow", workers: process.env.VITEST_SLOW_WORKERS || "2" },
  { name: "fast", workers: process.env.VITEST_FAST_WORKERS || "3" },
];

/** The reporters, their output files, and every other flag, from vitest's command line. */
function parseFlags(argv) {
  const reporters = [];
  const outputFiles = new Map();
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    if (flag === "--reporter") reporters.push(value());
    else if (flag.startsWith("--outputFile.")) outputFiles.set(flag.slice("--outputFile.".length), value());
    else if (flag === "--outputFile") outputFiles.set("*", value());
    else rest.push(arg);
  }
  return { reporters, outputFiles, rest };
}

const { reporters, outputFiles, rest } = parseFlags(process.argv.slice(2));
const fileReporters = reporters.filter((name) => outputFiles.has(name) || (outputFiles.has("*") && name !== "default"));
const consoleReporters = reporters.filter((name) => !fileReporters.includes(name));
const blobDir = mkdtempSync(path.join(tmpdir(), "vitest-tiers-"));

const children = new Set();
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
  });
}

/** Runs vitest with `args`; resolves with its exit code (1 when it was ended by a signal). */
function vitest(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VITEST, ...args], { cwd: ROOT, stdio: "inherit" });
    children.add(child);
    child.on("error", (error) => {
      console.error(`vitest: ${error.message}`);
      resolve(1);
    });
    child.on("close", (code) => {
      children.delete(child);
      resolve(code ?? 1);
    });
  });
}

const started = Date.now();
const codes = await Promise.all(
  TIERS.map((tier) =>
    vitest([
      "run",
      `--project=${tier.name}`,
      `--maxWorkers=${tier.workers}`,
      // A filter may leave one tier nothing to run; the merged report still counts what ran.
      "--passWithNoTests",
      ...rest,
      ...(consoleReporters.length > 0 ? consoleReporters : ["default"]).map((name) => `--reporter=${name}`),
      "--reporter=blob",
      `--outputFile.blob=${path.join(blobDir, `${tier.name}.json`)}`,
    ]),
  ),
);
const seconds = ((Date.now() - started) / 1000).toFixed(1);

// The merged results: the file reporters asked for, and always a JSON report for the summary line.
const summaryFile = outputFiles.get("json") ?? `${blobDir}.json`;
const merged = new Map(fileReporters.map((name) => [name, outputFiles.get(name) ?? outputFiles.get("*")]));
merged.set("json", summaryFile);
const tierReports = readdirSync(blobDir).length;
let mergeCode = 0;
if (tierReports > 0) {
  mergeCode = await vitest([
    "run",
    `--merge-reports=${blobDir}`,
    "--passWithNoTests",
    ...[...merged].flatMap(([name, file]) => [`--reporter=${name}`, `--outputFile.${name}=${file}`]),
  ]);
}
if (tierReports < TIERS.length) console.error(`vitest tiers: ${TIERS.length - tierReports} of ${TIERS.length} tiers ended without a report`);
let summary = "no report";
try {
  const report = JSON.parse(readFileSync(summaryFile, "utf8"));
  summary = `${report.testResults.length} files, ${report.numPassedTests} tests passed, ${report.numFailedTests} failed, ${report.numPendingTests} skipped`;
} catch {
  // Said as "no report".
}
console.log(`vitest tiers: ${summary} in ${seconds} s (${TIERS.map((tier, i) => `${tier.name} exit ${codes[i]}`).join(", ")})`);
rmSync(blobDir, { recursive: true, force: true });
if (!outputFiles.has("json")) rmSync(summaryFile, { force: true });
process.exit(Math.max(...codes, mergeCode) > 0 ? 1 : 0);
