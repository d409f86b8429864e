/**
 * How a platform process is started: the Node.js arguments that run one of its entry points
 * (`services/<name>/main.ts`, `gateway/main.ts`, a script). `make run`, `make chaos` and the
 * benchmarks start every service through this one place.
 */
import path from "node:path";

/** The repository's root folder. */
export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");

/**
 * The arguments after `node` that run `entry` (a path to a `.ts` file, absolute or relative to the
 * repository root), with `nodeOptions` (e.g. `--cpu-prof`) in front.
 */
export function nodeArgsFor(entry: string, nodeOptions: readonly string[] = []): string[] {
  const relative = path.isAbsolute(entry) && entry.startsWith(REPO_ROOT + path.sep) ? path.relative(REPO_ROOT, entry) : entry;
  return [...nodeOptions, "--import", "tsx", relative];
}
