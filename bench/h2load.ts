/**
 * h2load (nghttp2's load generator; `make h2load` installs it) for the benchmarks: the arguments
 * of a timed run, the run itself, and parsers of what it prints and of its per-request log.
 *
 * h2load reports request times only as min / max / mean / sd, so percentiles come from its
 * `--log-file` (one line per request of the measured phase: start time in µs since the epoch,
 * HTTP status, duration in µs).
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { percentile } from "./report.js";

/** What h2load printed at the end of a run. */
export interface H2loadSummary {
  /** Length of the run as printed ("finished in 3.00s"; includes a warm-up), in seconds. */
  readonly finishedS: number;
  /** Requests per second of the measured phase, as printed. */
  readonly reqPerS: number;
  readonly requests: {
    readonly total: number;
    readonly started: number;
    readonly done: number;
    readonly succeeded: number;
    readonly failed: number;
    readonly errored: number;
    readonly timeout: number;
  };
  /** Answers by status class. */
  readonly status: { readonly "2xx": number; readonly "3xx": number; readonly "4xx": number; readonly "5xx": number };
  /** "time for request" in ms, when printed. */
  readonly requestMs: { readonly min: number; readonly max: number; readonly mean: number; readonly sd: number } | undefined;
  /** The negotiated protocol ("http/1.1", "h2c", "h2"), when printed. */
  readonly protocol: string | undefined;
}

/** "114us", "195.39ms", "2.16s" -> milliseconds. */
export function parseDurationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!match) throw new Error(`not an h2load duration: "${text}"`);
  const value = Number(match[1]);
  return match[2] === "us" ? value / 1000 : match[2] === "ms" ? value : value * 1000;
}

function required(text: string, pattern: RegExp, what: string): RegExpExecArray {
  const match = pattern.exec(text);
  if (!match) throw new Error(`h2load output has no ${what} line:\n${text.slice(-2000)}`);
  return match;
}

/** Parses the summary h2load prints at the end of a run. Throws when a line it needs is missing. */
export function parseH2loadOutput(text: string): H2loadSummary {
  const finished = required(text, /^finished in ([\d.]+(?:us|ms|s)), ([\d.]+) req\/s/m, "'finished in'");
  const requests = required(
    text,
    /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m,
    "'requests:'",
  );
  const status = required(text, /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m, "'status codes:'");
  const request = /^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(text);
  const protocol = /^Application protocol: (\S+)/m.exec(text);
  const n = (m: RegExpExecArray, i: number) => Number(m[i]);
  return {
    finishedS: parseDurationMs(finished[1]!) / 1000,
    reqPerS: Number(finished[2]),
    requests: {
      total: n(requests, 1),
      started: n(requests, 2),
      done: n(requests, 3),
      succeeded: n(requests, 4),
      failed: n(requests, 5),
      errored: n(requests, 6),
      timeout: n(requests, 7),
    },
    status: { "2xx": n(status, 1), "3xx": n(status, 2), "4xx": n(status, 3), "5xx": n(status, 4) },
    requestMs: request
      ? {
          min: parseDurationMs(request[1]!),
          max: parseDurationMs(request[2]!),
          mean: parseDurationMs(request[3]!),
          sd: parseDurationMs(request[4]!),
        }
      : undefined,
    protocol: protocol?.[1],
  };
}

/** One request of h2load's `--log-file`. */
export interface H2loadLogEntry {
  /** When it started, µs since the epoch. */
  readonly startUs: number;
  /** HTTP status; -1 when the request failed without an answer. */
  readonly status: number;
  /** How long it took, µs. */
  readonly durationUs: number;
}

/** Parses h2load's `--log-file` (tab-separated: start µs, status, duration µs). */
export function parseH2loadLog(text: string): H2loadLogEntry[] {
  const entries: H2loadLogEntry[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const [start, status, duration] = line.split("\t");
    const entry = { startUs: Number(start), status: Number(status), durationUs: Number(duration) };
    if (![entry.startUs, entry.status, entry.durationUs].every(Number.isFinite)) throw new Error(`not an h2load log line: "${line}"`);
    entries.push(entry);
  }
  return entries;
}

/** The durations (ms) of the log's requests that were answered with a status in `ok` (default 2xx). */
export function answeredMs(entries: readonly H2loadLogEntry[], ok: (status: number) => boolean = (s) => s >= 200 && s < 300): number[] {
  return entries.filter((e) => ok(e.status)).map((e) => e.durationUs / 1000);
}

/** Latency percentiles (ms) of durations in ms. */
export function latencyOf(ms: readonly number[]) {
  return { count: ms.length, p50: percentile(ms, 50), p90: percentile(ms, 90), p99: percentile(ms, 99), max: ms.length ? Math.max(...ms) : Number.NaN };
}

/** A timed h2load run. */
export interface H2loadRun {
  readonly url: string;
  /** HTTP/1.1 (`--h1`) instead of HTTP/2 cleartext. */
  readonly h1?: boolean;
  /** Connections (`-c`). */
  readonly connections: number;
  /** Concurrent streams per connection (`-m`, HTTP/2 only). Default 1. */
  readonly streams?: number;
  /** Measured seconds (`-D`). */
  readonly durationS: number;
  /** Warm-up seconds before the measured phase (`--warm-up-time`). */
  readonly warmupS?: number;
  /** Request headers, "name: value". */
  readonly headers?: readonly string[];
  /** A file whose content is every request's body (`-d`; makes the requests POSTs). */
  readonly bodyFile?: string;
  /** Where h2load writes one line per request (`--log-file`). */
  readonly logFile?: string;
}

/** The h2load arguments of `run`. */
export function h2loadArgs(run: H2loadRun): string[] {
  const args = ["-t", "1", "-c", String(run.connections), "-m", String(run.streams ?? 1), "-D", String(run.durationS)];
  if (run.warmupS) args.push(`--warm-up-time=${run.warmupS}`);
  if (run.h1) args.push("--h1");
  for (const header of run.headers ?? []) args.push("-H", header);
  if (run.bodyFile) args.push("-d", run.bodyFile);
  if (run.logFile) args.push(`--log-file=${run.logFile}`);
  args.push(run.url);
  return args;
}

/** What a run measured: h2load's summary, and latency percentiles from its log when one was kept. */
export interface H2loadResult {
  readonly summary: H2loadSummary;
  readonly latency: ReturnType<typeof latencyOf> | undefined;
  /** The duration (ms) of every answered (2xx) request, when a log was kept. */
  readonly latenciesMs: readonly number[] | undefined;
  /** The whole output, for a report when something went wrong. */
  readonly output: string;
}

/** The h2load binary: H2LOAD_BIN, else `h2load` on PATH. */
export const H2LOAD_BIN = process.env["H2LOAD_BIN"]?.trim() || "h2load";

/** Runs h2load (killed when it overruns its time by 30 s) and parses what it printed and logged. */
export function runH2load(run: H2loadRun): Promise<H2loadResult> {
  const limitMs = ((run.warmupS ?? 0) + run.durationS + 30) * 1000;
  return new Promise((resolve, reject) => {
    execFile(H2LOAD_BIN, h2loadArgs(run), { timeout: limitMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const output = stdout + stderr;
      if (error) {
        reject(new Error(`h2load ${run.url} failed: ${error.message}\n${output.slice(-2000)}`));
        return;
      }
      void (async () => {
        const summary = parseH2loadOutput(output);
        const latenciesMs = run.logFile ? answeredMs(parseH2loadLog(await readFile(run.logFile, "utf8"))) : undefined;
        return { summary, latency: latenciesMs ? latencyOf(latenciesMs) : undefined, latenciesMs, output };
      })().then(resolve, reject);
    });
  });
}

/** h2load's version, e.g. "nghttp2/1.52.0"; undefined when it does not run. */
export function h2loadVersion(): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(H2LOAD_BIN, ["--version"], { timeout: 10_000 }, (error, stdout) => {
      resolve(error ? undefined : (/h2load (\S+)/.exec(stdout)?.[1] ?? stdout.trim()));
    });
  });
}

/** A gRPC message as sent on the wire: 1 byte "not compressed", 4 bytes length (big-endian), the message. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}
