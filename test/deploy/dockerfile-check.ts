/**
 * A static check of the repository's Dockerfile, for a machine with no container runtime: it
 * reads the instructions and reports what would break the image or make it unsafe, without
 * building it. What it cannot see (a package that fails to install, a base image that moved) is
 * left to a real build.
 */
import { existsSync } from "node:fs";
import path from "node:path";

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  readonly keyword: string;
  /** The rest of the instruction, continuation lines joined. */
  readonly args: string;
  /** 1-based line where it starts. */
  readonly line: number;
}

export interface Stage {
  readonly name: string | undefined;
  /** The image it starts from, ARG defaults substituted. */
  readonly image: string;
  readonly instructions: readonly Instruction[];
}

/** The instructions of a Dockerfile: comments and blank lines dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i] ?? "";
    if (/^\s*(#|$)/.test(first)) continue;
    const start = i + 1;
    let joined = first;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, " ");
      i++;
      const next = lines[i] ?? "";
      if (/^\s*#/.test(next)) continue;
      joined += next;
    }
    const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(joined);
    if (match) instructions.push({ keyword: (match[1] ?? "").toUpperCase(), args: (match[2] ?? "").trim().replace(/\s+/g, " "), line: start });
  }
  return instructions;
}

/** The stages of a Dockerfile, the global ARG defaults substituted into each FROM. */
export function stagesOf(instructions: readonly Instruction[]): Stage[] {
  const globalArgs = new Map<string, string>();
  const stages: { name: string | undefined; image: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "ARG" && stages.length === 0) {
      const [name = "", value = ""] = instruction.args.split("=", 2);
      globalArgs.set(name.trim(), value.trim().replace(/^"|"$/g, ""));
    } else if (instruction.keyword === "FROM") {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      const image = (match?.[1] ?? "").replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => globalArgs.get(name) ?? "");
      stages.push({ name: match?.[2], image, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** A .dockerignore as a predicate over repository-relative paths (Docker's pattern rules, `!` included). */
export function dockerIgnore(text: string): (relativePath: string) => boolean {
  const rules = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const negated = line.startsWith("!");
      const pattern = path.posix.normalize((negated ? line.slice(1) : line).replace(/^\/+/, "")).replace(/\/+$/, "");
      let source = "";
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i] as string;
        if (c === "*" && pattern[i + 1] === "*") {
          // `**/` matches any number of folders, `**` at the end anything.
          if (pattern[i + 2] === "/") {
            source += "(?:.*/)?";
            i += 2;
          } else {
            source += ".*";
            i += 1;
          }
        } else if (c === "*") source += "[^/]*";
        else if (c === "?") source += "[^/]";
        else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
      }
      return { negated, regex: new RegExp(`^${source}$`) };
    });
  return (relativePath) => {
    const parts = relativePath.split("/");
    // A path is excluded when it, or a folder it lies in, matches; the last matching rule wins.
    let ignored = false;
    for (const rule of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (rule.regex.test(parts.slice(0, n).join("/"))) {
          ignored = !rule.negated;
          break;
        }
      }
    }
    return ignored;
  };
}

/** Flags (`--from=build`, `--chmod=0755`) and operands of a COPY/ADD, JSON form included. */
export function copyOperands(args: string): { flags: Map<string, string>; sources: string[]; destination: string } {
  const flags = new Map<string, string>();
  let rest = args;
  for (;;) {
    const flag = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (!flag) break;
    flags.set(flag[1] ?? "", flag[2] ?? "");
    rest = rest.slice(flag[0].length);
  }
  const operands = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(" ").filter((part) => part !== "");
  return { flags, sources: operands.slice(0, -1), destination: operands.at(-1) ?? "" };
}

export interface DockerfileExpectations {
  /** Repository root: COPY sources are looked up there. */
  readonly root: string;
  /** The runtime stage must start from an image matching this. */
  readonly runtimeImage: RegExp;
}

/** What is wrong with a Dockerfile (and its .dockerignore); empty when nothing is. */
export function dockerfileProblems(dockerfile: string, ignore: string, expect: DockerfileExpectations): string[] {
  const problems: string[] = [];
  const stages = stagesOf(parseDockerfile(dockerfile));
  const ignored = dockerIgnore(ignore);
  if (stages.length < 2) problems.push(`not a multi-stage build: ${stages.length} stage(s)`);
  const runtime = stages.at(-1);
  if (runtime === undefined) return [...problems, "no FROM"];
  if (!expect.runtimeImage.test(runtime.image)) problems.push(`the runtime stage starts from "${runtime.image}", not ${expect.runtimeImage}`);

  const runs = stages.flatMap((stage) => stage.instructions.filter((i) => i.keyword === "RUN").map((i) => ({ stage, text: i.args })));
  const buildStage = runs.find((run) => /\bnode scripts\/build\.mjs\b|\bmake build\b/.test(run.text))?.stage;
  if (buildStage === undefined) problems.push("no stage compiles the services (node scripts/build.mjs or make build)");
  else if (!buildStage.instructions.some((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args))) {
    problems.push(`the build stage ${buildStage.name ?? "(unnamed)"} does not install the locked packages (npm ci)`);
  }
  if (runtime.instructions.some((i) => i.keyword === "RUN" && /\bnpm (ci|install)\b/.test(i.args) && !/--omit=dev/.test(i.args))) {
    problems.push("the runtime stage installs dev dependencies");
  }

  stages.forEach((stage, index) => {
    for (const instruction of stage.instructions) {
      if (instruction.keyword !== "COPY" && instruction.keyword !== "ADD") continue;
      const { flags, sources } = copyOperands(instruction.args);
      const from = flags.get("from");
      if (from !== undefined) {
        const earlier = stages.slice(0, index).some((s) => s.name === from);
        if (!earlier) problems.push(`line ${instruction.line}: COPY --from=${from} names no earlier stage`);
        continue;
      }
      for (const source of sources) {
        const relative = path.posix.normalize(source).replace(/^\.\/?/, "").replace(/\/$/, "");
        if (relative === "" || relative === ".") continue;
        if (!existsSync(path.join(expect.root, relative))) problems.push(`line ${instruction.line}: COPY source ${source} does not exist`);
        else if (ignored(relative)) problems.push(`line ${instruction.line}: COPY source ${source} is excluded by .dockerignore`);
      }
    }
  });
  if (!runtime.instructions.some((i) => i.keyword === "COPY" && copyOperands(i.args).flags.get("from") === buildStage?.name && /\.build/.test(i.args))) {
    problems.push("the runtime stage does not copy the compiled .build/ from the build stage");
  }

  // The bundles are ES modules named .js: Node needs the package.json ("type": "module") beside .build/.
  if (!runtime.instructions.some((i) => i.keyword === "COPY" && copyOperands(i.args).sources.some((source) => /(^|\/)package\.json$/.test(source)))) {
    problems.push("the runtime stage has no package.json: Node would not load the bundles as ES modules");
  }

  const users = runtime.instructions.filter((i) => i.keyword === "USER");
  const user = users.at(-1)?.args.split(":")[0];
  if (user === undefined) problems.push("the runtime stage sets no USER: it would run as root");
  else if (user === "root" || user === "0") problems.push(`the runtime stage runs as ${user}`);
  const lastUser = runtime.instructions.lastIndexOf(users.at(-1) as Instruction);
  const lastRun = runtime.instructions.findLastIndex((i) => i.keyword === "RUN");
  if (users.length > 0 && lastRun > lastUser) problems.push("a RUN follows the last USER of the runtime stage");

  if (!runtime.instructions.some((i) => i.keyword === "ENTRYPOINT" || i.keyword === "CMD")) problems.push("the runtime stage has no ENTRYPOINT or CMD");
  for (const pattern of ["node_modules", ".build", ".run", ".git"]) {
    if (!ignored(pattern)) problems.push(`.dockerignore lets ${pattern} into the build context`);
  }
  return problems;
}

/** The file the runtime stage's ENTRYPOINT (exec form) runs, as copied from the repository. */
export function entrypointSource(dockerfile: string): string | undefined {
  const runtime = stagesOf(parseDockerfile(dockerfile)).at(-1);
  const entry = runtime?.instructions.findLast((i) => i.keyword === "ENTRYPOINT");
  if (entry === undefined || !entry.args.startsWith("[")) return undefined;
  const target = (JSON.parse(entry.args) as string[])[0];
  for (const instruction of runtime?.instructions ?? []) {
    if (instruction.keyword !== "COPY") continue;
    const { flags, sources, destination } = copyOperands(instruction.args);
    if (flags.has("from") || sources.length !== 1) continue;
    if (destination === target) return sources[0];
  }
  return undefined;
}

/**
 * The packages scripts/build.mjs leaves out of the bundles (its EXTERNAL list) that the
 * production install (`npm ci --omit=dev`) would not provide, from package-lock.json.
 */
export function missingRuntimePackages(buildScript: string, lockfile: string): string[] {
  const list = /const EXTERNAL = \[([^\]]*)\]/.exec(buildScript)?.[1];
  if (list === undefined) return ["scripts/build.mjs: no EXTERNAL list found"];
  const externals = [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1] as string);
  const packages = (JSON.parse(lockfile) as { packages: Record<string, { dev?: boolean }> }).packages;
  return externals.filter((name) => {
    const entry = packages[`node_modules/${name}`];
    return entry === undefined || entry.dev === true;
  });
}
