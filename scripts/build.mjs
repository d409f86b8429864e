// Compiles the platform's processes to JavaScript: every services/<name>/main.ts,
// gateway/main.ts and `make run`'s supervisor scripts/run.ts becomes one ES module under .build/ (git-ignored) with the same relative path
// (.build/services/account/main.js), for Node 20, with a source map beside it. `make run`,
// `make chaos` and `make bench` build first (`make build`); lib/devtools/service-command.ts then
// starts the compiled file instead of the TypeScript source through the tsx loader, which keeps a
// second thread and a compiler in every process and takes seconds to start on a busy machine.
//
//   node scripts/build.mjs            build when a source changed since the last build (see below)
//   node scripts/build.mjs --force    build in any case
//
// Each bundle holds the entry's own code and the packages it uses (one module instead of hundreds
// saves each process memory and start-up time), except the few listed in EXTERNAL below, which
// are loaded from node_modules as usual.
//
// In first-party code, `import.meta.url`, `import.meta.dirname` and `import.meta.filename` keep
// naming the source file (lib/nats/auth.ts finds .run/ relative to itself, lib/devtools/ its
// supervise.sh): they are rewritten to the source's path, found from the bundle's own location, so
// the compiled code behaves as the source does wherever the checkout lives.
//
// .build/manifest.json records, for every entry, its bundle and the size and modification time of
// every source file in it, plus those of package-lock.json as installed
// (node_modules/.package-lock.json) and of this script. A build is current while all of them are
// unchanged; lib/devtools/service-command.ts makes the same check before it starts a bundle, and
// starts the source through tsx (saying why) when it is not.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT_DIR = path.join(root, ".build");
const MANIFEST = path.join(OUT_DIR, "manifest.json");
/** Files besides the sources whose change makes every bundle stale. */
const ALWAYS_INPUTS = ["node_modules/.package-lock.json", "scripts/build.mjs"];

/** Every entry point, relative to the repository root: services/<name>/main.ts, gateway/main.ts, scripts/run.ts. */
function entryPoints() {
  const entries = readdirSync(path.join(root, "services"), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(root, "services", d.name, "main.ts")))
    .map((d) => `services/${d.name}/main.ts`)
    .sort();
  if (existsSync(path.join(root, "gateway", "main.ts"))) entries.push("gateway/main.ts");
  // `make run`'s supervisor: the tests that start the platform as a user does run it compiled.
  entries.push("scripts/run.ts");
  return entries;
}

/** Size and modification time of a file relative to the root, or null when it is missing. */
function fingerprint(relative) {
  try {
    const s = statSync(path.join(root, relative));
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return null;
  }
}

/** Why the build in .build/ does not match the sources (undefined when it does). */
function staleness(entries) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
  } catch {
    return "no build yet";
  }
  for (const entry of entries) {
    const built = manifest.entries?.[entry];
    if (!built) return `${entry} is not built`;
    if (!existsSync(path.join(OUT_DIR, built.output))) return `${built.output} is missing`;
    for (const [file, print] of Object.entries(built.inputs)) {
      if (fingerprint(file) !== print) return `${file} changed`;
    }
  }
  return undefined;
}

/** Rewrites import.meta.url/dirname/filename in first-party sources to the source's own location. */
const sourceLocation = {
  name: "source-location",
  setup(build) {
    build.onLoad({ filter: /\.[cm]?ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const source = readFileSync(args.path, "utf8");
      if (!source.includes("import.meta.")) return undefined;
      const relative = JSON.stringify(path.relative(root, args.path).split(path.sep).join("/"));
      const contents = source
        .replaceAll("import.meta.url", `__sourceUrl(${relative})`)
        .replaceAll("import.meta.dirname", `__sourceDirname(${relative})`)
        .replaceAll("import.meta.filename", `__sourceFilename(${relative})`);
      return { contents, loader: "ts" };
    });
  },
};

/**
 * Defines the helpers sourceLocation calls, and `require` for the CommonJS packages in the bundle.
 * The repository root is the folder holding .build/, found from the bundle's own location, so a
 * moved checkout still resolves correctly.
 */
const BANNER = [
  'import { fileURLToPath as __fileURLToPath } from "node:url";',
  'import { createRequire as __createRequire } from "node:module";',
  "const require = __createRequire(import.meta.url);",
  'const __repoRoot = new URL(".", import.meta.url.slice(0, import.meta.url.lastIndexOf("/.build/") + 1));',
  "const __sourceUrl = (file) => new URL(file, __repoRoot).href;",
  "const __sourceFilename = (file) => __fileURLToPath(new URL(file, __repoRoot));",
  'const __sourceDirname = (file) => __fileURLToPath(new URL(".", new URL(file, __repoRoot))).replace(/\\/$/, "");',
].join("\n");

/**
 * Packages that read files beside their own code when loaded (grpc-health-check and
 * @grpc/reflection load .proto files through __dirname, with proto-loader and protobufjs), or that
 * are loaded only on demand (@peculiar/x509 and reflect-metadata, when a development certificate is
 * made): never bundled.
 * Every other package is bundled: one module instead of hundreds saves memory and start-up time.
 * A bundled package must not need __dirname; those in the bundles use it only on paths the
 * platform does not take (pino transports, grpc-js channelz and xDS).
 */
const EXTERNAL = ["grpc-health-check", "@grpc/reflection", "@grpc/proto-loader", "protobufjs", "@peculiar/x509", "reflect-metadata"];

/** Writes a file by renaming a complete copy over it, so a reader never sees half of it. */
function writeAtomically(file, contents) {
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, file);
}

async function build(entries) {
  const esbuild = await import("esbuild");
  const started = Date.now();
  const result = await esbuild.build({
    entryPoints: entries.map((entry) => path.join(root, entry)),
    outdir: OUT_DIR,
    outbase: root,
    absWorkingDir: root,
    bundle: true,
    external: EXTERNAL,
    format: "esm",
    platform: "node",
    target: "node20",
    // Source maps beside the bundles, naming the TypeScript sources (read from disk when a trace
    // is mapped): NODE_OPTIONS=--enable-source-maps maps stack traces to them.
    sourcemap: "linked",
    sourcesContent: false,
    // Whitespace and syntax only (names are kept, for stack traces): every process keeps its
    // bundle's source text in memory.
    minifyWhitespace: true,
    minifySyntax: true,
    banner: { js: BANNER },
    plugins: [sourceLocation],
    metafile: true,
    write: false,
    logLevel: "warning",
  });
  const manifest = { builtAt: new Date().toISOString(), entries: {} };
  for (const [output, meta] of Object.entries(result.metafile.outputs)) {
    if (!meta.entryPoint) continue;
    const entry = path.relative(root, path.resolve(root, meta.entryPoint)).split(path.sep).join("/");
    const firstParty = Object.keys(meta.inputs).filter((input) => !input.split("/").includes("node_modules"));
    const inputs = {};
    for (const input of [...firstParty, ...ALWAYS_INPUTS].sort()) inputs[input] = fingerprint(input);
    manifest.entries[entry] = { output: path.relative(OUT_DIR, path.resolve(root, output)).split(path.sep).join("/"), inputs };
  }
  // Each file is replaced whole, the manifest last: a process started meanwhile runs a complete
  // bundle, and one the manifest calls current only once it is.
  for (const file of result.outputFiles) writeAtomically(file.path, file.contents);
  writeAtomically(MANIFEST, JSON.stringify(manifest, null, 1) + "\n");
  return Date.now() - started;
}

const entries = entryPoints();
const force = process.argv.includes("--force");
const reason = force ? "--force" : staleness(entries);
if (reason) {
  const ms = await build(entries);
  process.stdout.write(`build: ${entries.length} entry points compiled to ${path.relative(process.cwd(), OUT_DIR) || "."}/ in ${ms} ms (${reason})\n`);
}

// The web console (browser code, its own bundle and stamp): scripts/build-console.mjs.
const { buildConsoleIfStale } = await import("./build-console.mjs");
await buildConsoleIfStale({ force });
