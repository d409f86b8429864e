/**
 * How a platform process is started: the Node.js arguments that run one of its entry points
 * (`services/<name>/main.ts`, `gateway/main.ts`, a script). `make run`, `make chaos` and the
 * benchmarks start every service through this one place.
 *
 * A service or the gateway runs as compiled JavaScript when `scripts/build.mjs` (`make build`,
 * which `make run`, `make chaos` and `make bench` do first) has compiled it and the build is
 * current: none of the files it was compiled from changed since (the size and modification time
 * of each, recorded in .build/manifest.json). Otherwise, and for every other entry (scripts, or a
 * service outside the repository), the TypeScript source runs through the tsx loader. A build
 * that is out of date is never started: the source runs instead, and the reason is printed once.
 *
 * PLATFORM_RUNTIME chooses: `tsx` always runs the source through tsx; `compiled` requires a
 * current build (an error otherwise); unset or `auto` is the rule above.
 */
import { readFileSync, statSync } from "node:fs";
import path from "node:path";

/** The repository's root folder. */
export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");

/** Where scripts/build.mjs writes the bundles and their manifest. */
export const BUILD_DIR = path.join(REPO_ROOT, ".build");

/**
 * Node.js options every compiled process gets. The young generation is bounded at 8 MB per
 * semi-space (V8's default lets it grow to 16 MB each, and a process keeps what a burst of load
 * grew); smaller ones cost far more scavenging per request. `--expose-gc` lets a process collect
 * its start-up garbage once it is ready (lib/service/startup-memory.ts). Source maps lie beside
 * the bundles: NODE_OPTIONS=--enable-source-maps maps stack traces to the TypeScript sources (it
 * costs each process a few MB, so it is not the default).
 */
export const COMPILED_NODE_OPTIONS: readonly string[] = ["--max-semi-space-size=8", "--expose-gc"];

interface Manifest {
  entries: Record<string, { output: string; inputs: Record<string, string | null> } | undefined>;
}

/** How an entry runs: `compiled` (the bundle's path) or through tsx, and why. */
export type EntryRuntime = { kind: "compiled"; file: string } | { kind: "tsx"; reason: string };

function fingerprint(file: string): string | null {
  try {
    const s = statSync(path.join(REPO_ROOT, file));
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return null;
  }
}

/** An entry's path relative to the repository root, with `/` separators (undefined: outside it). */
function repoRelative(entry: string): string | undefined {
  const absolute = path.resolve(REPO_ROOT, entry);
  const relative = path.relative(REPO_ROOT, absolute);
  if (relative.startsWith("..") || path.isAbsolute(relative)) return undefined;
  return relative.split(path.sep).join("/");
}

/** Whether `entry` has a current compiled build (the same check as scripts/build.mjs makes). */
export function entryRuntime(entry: string): EntryRuntime {
  const relative = repoRelative(entry);
  if (relative === undefined) return { kind: "tsx", reason: `${entry} is outside the repository` };
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(BUILD_DIR, "manifest.json"), "utf8")) as Manifest;
  } catch {
    return { kind: "tsx", reason: "nothing is built (make build)" };
  }
  const built = manifest.entries[relative];
  if (!built) return { kind: "tsx", reason: `${relative} is not compiled` };
  const file = path.join(BUILD_DIR, built.output);
  try {
    statSync(file);
  } catch {
    return { kind: "tsx", reason: `${path.relative(REPO_ROOT, file)} is missing` };
  }
  for (const [input, print] of Object.entries(built.inputs)) {
    if (fingerprint(input) !== print) return { kind: "tsx", reason: `the build is out of date (${input} changed since; make build)` };
  }
  return { kind: "compiled", file };
}

const noticed = new Set<string>();

/**
 * The arguments after `node` that run `entry` (a path to a `.ts` file, absolute or relative to the
 * repository root), with `nodeOptions` (e.g. `--cpu-prof`) in front: the compiled bundle when it
 * is current (see above), else the source through the tsx loader.
 */
export function nodeArgsFor(entry: string, nodeOptions: readonly string[] = []): string[] {
  const relative = path.isAbsolute(entry) && entry.startsWith(REPO_ROOT + path.sep) ? path.relative(REPO_ROOT, entry) : entry;
  const mode = process.env["PLATFORM_RUNTIME"]?.trim().toLowerCase() || "auto";
  if (mode !== "tsx" && mode !== "compiled" && mode !== "auto") {
    throw new Error(`PLATFORM_RUNTIME=${mode}: expected tsx, compiled or auto`);
  }
  if (mode !== "tsx" && /(^|\/)((services\/[^/]+|gateway)\/main|scripts\/run)\.ts$/.test(relative)) {
    const runtime = entryRuntime(entry);
    if (runtime.kind === "compiled") {
      return [...COMPILED_NODE_OPTIONS, ...nodeOptions, path.relative(REPO_ROOT, runtime.file)];
    }
    if (mode === "compiled") throw new Error(`PLATFORM_RUNTIME=compiled: ${relative} cannot run compiled: ${runtime.reason}`);
    if (repoRelative(entry) !== undefined && !noticed.has(runtime.reason)) {
      noticed.add(runtime.reason);
      process.stderr.write(`[platform] running the TypeScript sources through tsx: ${runtime.reason}\n`);
    }
  }
  return [...nodeOptions, "--import", "tsx", relative];
}
