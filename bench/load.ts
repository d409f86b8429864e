/**
 * The load loop both comparisons share: calls at a fixed concurrency, bounded by count and time,
 * with each call's latency.
 */

/** What the measured runs of one path add up to. */
export interface PathResult {
  requests: number;
  errors: number;
  elapsedMs: number;
  latenciesMs: number[];
  /** The first error seen, to name in the report. */
  firstError: string | undefined;
}

export function emptyResult(): PathResult {
  return { requests: 0, errors: 0, elapsedMs: 0, latenciesMs: [], firstError: undefined };
}

/**
 * Calls `read(i)` for i = 0..count-1 with `concurrency` calls in flight until all are done or
 * `maxMs` has passed, adding requests, errors, wall time and each call's latency (process.hrtime)
 * to `into`. `read` resolves when the answer is the expected one and throws otherwise.
 */
export async function run(read: (i: number) => Promise<void>, count: number, concurrency: number, maxMs: number, into: PathResult): Promise<void> {
  let next = 0;
  const start = process.hrtime.bigint();
  const stopAt = start + BigInt(Math.round(Math.max(0, maxMs) * 1e6));
  const worker = async () => {
    for (;;) {
      if (next >= count || process.hrtime.bigint() >= stopAt) return;
      const i = next++;
      const t0 = process.hrtime.bigint();
      try {
        await read(i);
        into.latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch (error) {
        into.errors++;
        into.firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  into.requests += next;
  into.elapsedMs += Number(process.hrtime.bigint() - start) / 1e6;
}

/** Prints each path's errors (count and first); the exit status: 1 when any path had errors. */
export function reportErrors(figures: readonly { name: string; result: PathResult }[]): number {
  let failed = false;
  for (const { name, result } of figures) {
    if (result.errors === 0) continue;
    failed = true;
    console.error(`${name}: ${result.errors} errors, first: ${result.firstError}`);
  }
  return failed ? 1 : 0;
}
