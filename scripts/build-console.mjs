// Builds the web console (console/: index.html, main.ts, style.css) into .build/console/
// (git-ignored), which the gateway serves at `/` and `/console/*` (gateway/console-files.ts).
// esbuild bundles the TypeScript entry and its CSS, leaflet's JavaScript, CSS and images
// included, from node_modules: the page loads nothing from outside the gateway.
//
//   node scripts/build-console.mjs            build when a source changed since the last build
//   node scripts/build-console.mjs --force    build in any case
//   node scripts/build-console.mjs --out DIR  build into DIR (tests)
//
// Every bundled file is named after its content's hash (main-XXXX.js, marker-icon-XXXX.png), so
// the gateway lets browsers keep them; index.html, which names them, is written last (a reader
// never sees an index naming files not yet written) and is never cached. The build is current
// while every file it was made from (the metafile's inputs, index.html, this script and the
// installed packages' lock) keeps its size and modification time, recorded in manifest.json.
// scripts/build.mjs (`make build`, run by `make run`) calls this; so does `make vitest`.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CONSOLE_OUT_DIR = path.join(root, ".build", "console");
const ALWAYS_INPUTS = ["console/index.html", "node_modules/.package-lock.json", "scripts/build-console.mjs"];

function fingerprint(relative) {
  try {
    const s = statSync(path.join(root, relative));
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return null;
  }
}

/** Why the console in `outDir` does not match its sources (undefined when it does). */
export function consoleStaleness(outDir = CONSOLE_OUT_DIR) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(outDir, "manifest.json"), "utf8"));
  } catch {
    return "no console build yet";
  }
  for (const file of [...(manifest.outputs ?? []), "index.html"]) {
    if (!existsSync(path.join(outDir, file))) return `${file} is missing`;
  }
  for (const [file, print] of Object.entries(manifest.inputs ?? {})) {
    if (fingerprint(file) !== print) return `${file} changed`;
  }
  return undefined;
}

function writeAtomically(file, contents) {
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, file);
}

/** Bundles the console into `outDir`; answers the time taken (ms). */
export async function buildConsole(outDir = CONSOLE_OUT_DIR) {
  const esbuild = await import("esbuild");
  const started = Date.now();
  const result = await esbuild.build({
    entryPoints: [path.join(root, "console", "main.ts")],
    outdir: outDir,
    absWorkingDir: root,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    publicPath: "/console/",
    loader: { ".png": "file", ".svg": "file" },
    minify: true,
    sourcemap: "linked",
    metafile: true,
    write: false,
    logLevel: "warning",
  });
  const names = result.outputFiles.map((f) => path.relative(outDir, f.path).split(path.sep).join("/"));
  const script = names.find((n) => /^main-[^/]+\.js$/.test(n));
  const style = names.find((n) => /^main-[^/]+\.css$/.test(n));
  if (!script || !style) throw new Error(`the console build made no main script or style sheet (${names.join(", ")})`);
  const index = readFileSync(path.join(root, "console", "index.html"), "utf8")
    .replace("%MAIN_JS%", `/console/${script}`)
    .replace("%MAIN_CSS%", `/console/${style}`);
  // Files of earlier builds (other hashes) go: only this build's files stay.
  if (existsSync(outDir)) {
    const kept = new Set([...names, "index.html", "manifest.json"]);
    for (const old of readdirSync(outDir)) if (!kept.has(old)) rmSync(path.join(outDir, old), { recursive: true, force: true });
  }
  for (const file of result.outputFiles) writeAtomically(file.path, file.contents);
  const inputs = {};
  const sources = Object.keys(result.metafile.inputs).map((input) => input.split(path.sep).join("/"));
  for (const input of [...new Set([...sources, ...ALWAYS_INPUTS])].sort()) inputs[input] = fingerprint(input);
  writeAtomically(path.join(outDir, "manifest.json"), JSON.stringify({ builtAt: new Date().toISOString(), outputs: names, inputs }, null, 1) + "\n");
  writeAtomically(path.join(outDir, "index.html"), index);
  return Date.now() - started;
}

/** Builds when stale (or forced); says so on stdout. */
export async function buildConsoleIfStale({ force = false, outDir = CONSOLE_OUT_DIR } = {}) {
  const reason = force ? "--force" : consoleStaleness(outDir);
  if (!reason) return;
  const ms = await buildConsole(outDir);
  process.stdout.write(`build: web console bundled into ${path.relative(process.cwd(), outDir) || "."}/ in ${ms} ms (${reason})\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outIndex = process.argv.indexOf("--out");
  const outDir = outIndex > 0 && process.argv[outIndex + 1] ? path.resolve(process.argv[outIndex + 1]) : CONSOLE_OUT_DIR;
  await buildConsoleIfStale({ force: process.argv.includes("--force"), outDir });
}
