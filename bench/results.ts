/**
 * The performance report's figures. Each benchmark records what it measured with `recordFigures`;
 * `bench/run.ts` (what `make bench` runs) gives every benchmark the same `BENCH_RESULTS_DIR`, then
 * reads every file there, prints one table (figure, platform, baseline, ratio, goal) and writes
 * `bench/results.json`. Run alone, a benchmark prints its own tables and records nothing.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface Figure {
  /** Stable key, e.g. "accept.rest" (unique across the report). */
  readonly id: string;
  /** What is measured, in words, e.g. "accepted POST /v1/deliveryrequests, 32 connections". */
  readonly figure: string;
  /** The platform's value, formatted with its unit, e.g. "2,140 req/s, p99 31 ms". */
  readonly platform: string;
  /** The baseline's value measured in the same run, formatted; "-" when the goal is absolute. */
  readonly baseline: string;
  /** platform / baseline (the figure's own direction: higher is better); null without a baseline. */
  readonly ratio: number | null;
  /** The goal in words, e.g. ">= 0.5x, p99 < 50 ms". */
  readonly goal: string;
  /** Whether the goal is met in this run; null when the figure has no goal. */
  readonly met: boolean | null;
  /** The raw numbers behind the formatted values (rates, percentiles in ms, counts, bytes). */
  readonly values: Readonly<Record<string, number>>;
}

/** Writes `figures` of benchmark `source` where `bench/run.ts` collects them; no-op when run alone. */
export async function recordFigures(source: string, figures: readonly Figure[]): Promise<void> {
  const dir = process.env["BENCH_RESULTS_DIR"];
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${source}.json`), JSON.stringify({ source, figures }, null, 2) + "\n");
}

/** Every figure recorded in `dir`, in the order of the sources' names. */
export async function readFigures(dir: string): Promise<{ source: string; figures: Figure[] }[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(".json")).sort();
  return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(dir, n), "utf8")) as { source: string; figures: Figure[] }));
}

/** "1,234" for integers, 2 significant decimals below 10. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 10 ? Math.round(value).toLocaleString("en-US") : value.toFixed(2);
}

/** "0.53x". */
export function formatRatio(ratio: number | null): string {
  return ratio === null || !Number.isFinite(ratio) ? "-" : `${ratio.toFixed(2)}x`;
}
