/**
 * Summarises a V8 CPU profile (`node --cpu-prof` writes one `.cpuprofile` per process): self time
 * by function and by file or package, largest first, so that what a request spends its CPU on can
 * be read without a browser.
 *
 *   npx tsx bench/cpu-profile.ts <file.cpuprofile> [top=40] [filter]
 *
 * `filter` keeps only functions whose "name file" contains it (e.g. `gateway/`, `nats`). Time
 * outside JavaScript shows as `(garbage collector)`, `(program)` (the VM and native code) and
 * `(idle)` (waiting for I/O, excluded from the shares). The benchmarks use `selfTimes` to
 * summarise a window of a profile (e.g. only their measured phase).
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  /** Monotonic clock of the first sample, in µs (process.hrtime's clock). */
  startTime: number;
}

export interface SelfTimes {
  /** CPU time outside `(idle)`, µs. */
  readonly busyUs: number;
  readonly idleUs: number;
  /** Self time by "function file:line", µs. */
  readonly byFunction: Map<string, number>;
  /** Self time by file, package, builtin or native group, µs. */
  readonly byPlace: Map<string, number>;
}

export function readProfile(file: string): Profile {
  return JSON.parse(readFileSync(file, "utf8")) as Profile;
}

/** A file's place: the package under node_modules, a node: builtin, or the path in the project. */
function placeOf(url: string): string {
  if (url === "") return "(native)";
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith("node:")) return url;
  const root = url.indexOf(process.cwd());
  return root >= 0 ? url.slice(root + process.cwd().length + 1) : url;
}

/** Self times of the samples of `profile`, only those taken within `windowUs` (monotonic µs) when given. */
export function selfTimes(profile: Profile, windowUs?: readonly [number, number]): SelfTimes {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (windowUs && (t < windowUs[0] || t > windowUs[1])) continue;
    const { functionName, url, lineNumber } = byId.get(profile.samples[i]!)!.callFrame;
    if (functionName === "(idle)") {
      idleUs += dt;
      continue;
    }
    busyUs += dt;
    const place = placeOf(url);
    const name = `${functionName || "(anonymous)"} ${place}${url ? `:${lineNumber + 1}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + dt);
    const group = url === "" ? functionName : place;
    byPlace.set(group, (byPlace.get(group) ?? 0) + dt);
  }
  return { busyUs, idleUs, byFunction, byPlace };
}

/** The `top` largest entries of a self-time map, largest first. */
export function largest(times: ReadonlyMap<string, number>, top: number, filter?: string): [string, number][] {
  return [...times]
    .filter(([name]) => !filter || name.includes(filter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
}

function main(): void {
  const [file, topArg, filter] = process.argv.slice(2);
  if (!file) {
    console.error("usage: npx tsx bench/cpu-profile.ts <file.cpuprofile> [top] [filter]");
    process.exit(2);
  }
  const top = Number(topArg ?? 40);
  const { busyUs, idleUs, byFunction, byPlace } = selfTimes(readProfile(file));
  const pct = (us: number) => `${((100 * us) / busyUs).toFixed(1).padStart(5)} %`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  console.log(`busy ${ms(busyUs)}, idle ${ms(idleUs)}`);
  console.log("\nself time by file or package:");
  for (const [place, us] of largest(byPlace, top)) console.log(`${pct(us)} ${ms(us)}  ${place}`);
  console.log(`\nself time by function${filter ? ` (matching ${filter})` : ""}:`);
  for (const [name, us] of largest(byFunction, top, filter)) console.log(`${pct(us)} ${ms(us)}  ${name}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
