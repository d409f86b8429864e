/**
 * Summarises a V8 CPU profile (`node --cpu-prof` writes one `.cpuprofile` per process): self time
 * by function and by file or package, largest first, so that what a request spends its CPU on can
 * be read without a browser.
 *
 *   npx tsx bench/cpu-profile.ts <file.cpuprofile> [top=40] [filter]
 *
 * `filter` keeps only functions whose "name file" contains it (e.g. `gateway/`, `nats`). Time
 * outside JavaScript shows as `(garbage collector)`, `(program)` (the VM and native code) and
 * `(idle)` (waiting for I/O, excluded from the shares).
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, filter] = process.argv.slice(2);
if (!file) {
  console.error("usage: npx tsx bench/cpu-profile.ts <file.cpuprofile> [top] [filter]");
  process.exit(2);
}
const top = Number(topArg ?? 40);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));

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

const selfByFunction = new Map<string, number>();
const selfByPlace = new Map<string, number>();
let total = 0;
let idle = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i]!)!;
  const dt = profile.timeDeltas[i] ?? 0;
  const { functionName, url, lineNumber } = node.callFrame;
  if (functionName === "(idle)") {
    idle += dt;
    continue;
  }
  total += dt;
  const place = placeOf(url);
  const name = `${functionName || "(anonymous)"} ${place}${url ? `:${lineNumber + 1}` : ""}`;
  selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + dt);
  const group = url === "" ? functionName : place;
  selfByPlace.set(group, (selfByPlace.get(group) ?? 0) + dt);
}

const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
console.log(`busy ${ms(total)}, idle ${ms(idle)}`);
console.log("\nself time by file or package:");
for (const [place, us] of [...selfByPlace].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)} ${ms(us)}  ${place}`);
console.log(`\nself time by function${filter ? ` (matching ${filter})` : ""}:`);
const functions = [...selfByFunction].filter(([name]) => !filter || name.includes(filter));
for (const [name, us] of functions.sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)} ${ms(us)}  ${name}`);
