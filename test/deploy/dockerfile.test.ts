// The Dockerfile, checked without a container runtime (none is reachable here): the stages, what
// they copy, the user, and that the image's entry point finds the compiled file of every service
// and of the gateway once the services are compiled as the build stage compiles them.

import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { entryPointOf, PLATFORM_REGISTRY, serviceEntries } from "../../lib/service/registry.js";
import { dockerfileProblems, dockerIgnore, entrypointSource, missingRuntimePackages, parseDockerfile, stagesOf } from "./dockerfile-check.js";

const root = path.resolve(import.meta.dirname, "../..");
const dockerfile = readFileSync(path.join(root, "Dockerfile"), "utf8");
const ignore = readFileSync(path.join(root, ".dockerignore"), "utf8");
const expectations = { root, runtimeImage: /^node:20(\.\d+)*-(bookworm|bullseye)-slim$/ };
const PROCESSES = PLATFORM_REGISTRY.map((entry) => entry.name);
const run = promisify(execFile);

describe("Dockerfile", () => {
  it("has no problem the static check can see", () => {
    expect(dockerfileProblems(dockerfile, ignore, expectations)).toEqual([]);
  });

  it("builds in one stage and runs in a slim one as a non-root user", () => {
    const stages = stagesOf(parseDockerfile(dockerfile));
    expect(stages.map((s) => s.name)).toEqual(["build", "runtime-packages", "runtime"]);
    expect(stages.at(-1)?.image).toBe("node:20-bookworm-slim");
    expect(stages.at(-1)?.instructions.filter((i) => i.keyword === "USER").map((i) => i.args)).toEqual(["1000:1000"]);
  });

  it("installs every package the bundles load from node_modules in the runtime image (production dependencies)", () => {
    const build = readFileSync(path.join(root, "scripts/build.mjs"), "utf8");
    const lock = readFileSync(path.join(root, "package-lock.json"), "utf8");
    expect(missingRuntimePackages(build, lock)).toEqual([]);
    // The check sees a package that only a dev dependency brings.
    expect(missingRuntimePackages(build.replace('const EXTERNAL = [', 'const EXTERNAL = ["esbuild", '), lock)).toEqual(["esbuild"]);
  });

  it("has a service folder with a main.ts for every service of the registry, and no other", () => {
    const folders = readdirSync(path.join(root, "services")).filter((name) => existsSync(path.join(root, "services", name, "main.ts")));
    expect(folders.sort()).toEqual(serviceEntries(PLATFORM_REGISTRY).map((entry) => entry.name).sort());
    expect(existsSync(path.join(root, "gateway", "main.ts"))).toBe(true);
  });

  describe("its entry point", () => {
    let out: string;
    const script = entrypointSource(dockerfile);

    beforeAll(async () => {
      // The bundles, compiled as scripts/build.mjs lays them out (outbase: the repository), into a
      // temporary folder standing for the image's /app: packages stay external, which changes
      // nothing about where each entry's file lands.
      out = await mkdtemp(path.join(tmpdir(), "image-app-"));
      const esbuild = await import("esbuild");
      await esbuild.build({
        entryPoints: PLATFORM_REGISTRY.map((entry) => path.join(root, entryPointOf(entry))),
        outdir: path.join(out, ".build"),
        outbase: root,
        absWorkingDir: root,
        bundle: true,
        packages: "external",
        format: "esm",
        platform: "node",
        target: "node20",
        logLevel: "silent",
      });
    }, 120_000);

    afterAll(async () => {
      if (out) await rm(out, { recursive: true, force: true });
    });

    it("is a script from the repository, executable", () => {
      expect(script).toBe("deploy/docker/entrypoint.sh");
      expect(statSync(path.join(root, script as string)).mode & 0o111).not.toBe(0);
    });

    it.each(PROCESSES)("runs the compiled file of %s, chosen by SERVICE or by argument", async (name) => {
      const entry = path.join(root, script as string);
      const env = { ...process.env, APP_DIR: out, ENTRYPOINT_PRINT: "1" };
      const byArgument = await run("sh", [entry, name], { env });
      const byEnv = await run("sh", [entry], { env: { ...env, SERVICE: name } });
      const expected = path.join(out, ".build", name === "gateway" ? "gateway/main.js" : `services/${name}/main.js`);
      expect(byArgument.stdout.trim()).toBe(expected);
      expect(byEnv.stdout.trim()).toBe(expected);
      expect(existsSync(expected)).toBe(true);
    });

    it("refuses an unknown or missing service name", async () => {
      const entry = path.join(root, script as string);
      const env = { ...process.env, APP_DIR: out, ENTRYPOINT_PRINT: "1", SERVICE: "" };
      await expect(run("sh", [entry, "nosuch"], { env })).rejects.toMatchObject({ code: 64 });
      await expect(run("sh", [entry, "../../etc"], { env })).rejects.toMatchObject({ code: 64 });
      await expect(run("sh", [entry], { env })).rejects.toMatchObject({ code: 64 });
    });
  });

  describe("the check itself", () => {
    it("reports a missing COPY source, an ignored one, a root user, a single stage and a fat runtime", () => {
      const bad = [
        "FROM node:20-bookworm-slim",
        "WORKDIR /app",
        "COPY package.json no-such-file.txt ./",
        "COPY node_modules ./node_modules",
        "RUN npm ci && node scripts/build.mjs",
        "USER root",
        'ENTRYPOINT ["node"]',
      ].join("\n");
      expect(dockerfileProblems(bad, ignore, expectations)).toEqual([
        "not a multi-stage build: 1 stage(s)",
        "the runtime stage installs dev dependencies",
        "line 3: COPY source no-such-file.txt does not exist",
        "line 4: COPY source node_modules is excluded by .dockerignore",
        "the runtime stage does not copy the compiled .build/ from the build stage",
        "the runtime stage runs as root",
      ]);
    });

    it("reports a RUN after the last USER (it would run as root)", () => {
      const late = dockerfile.replace('ENTRYPOINT ["/app/entrypoint.sh"]', 'RUN chmod -R a+w /app\nENTRYPOINT ["/app/entrypoint.sh"]');
      expect(dockerfileProblems(late, ignore, expectations)).toEqual(["a RUN follows the last USER of the runtime stage"]);
    });

    it("reports a runtime stage without package.json (the .js bundles are ES modules)", () => {
      const without = dockerfile.replace("COPY --from=runtime-packages /app/package.json ./package.json\n", "");
      expect(without).not.toBe(dockerfile);
      expect(dockerfileProblems(without, ignore, expectations)).toEqual(["the runtime stage has no package.json: Node would not load the bundles as ES modules"]);
    });

    it("reports a runtime stage without USER, on a full image, and a .dockerignore that lets node_modules in", () => {
      const noUser = dockerfile.replace(/^USER 1000:1000$/m, "").replace("ARG NODE_IMAGE=node:20-bookworm-slim", "ARG NODE_IMAGE=node:20");
      expect(dockerfileProblems(noUser, ignore.replace(/^node_modules$/m, ""), expectations)).toEqual([
        'the runtime stage starts from "node:20", not /^node:20(\\.\\d+)*-(bookworm|bullseye)-slim$/',
        "the runtime stage sets no USER: it would run as root",
        ".dockerignore lets node_modules into the build context",
      ]);
    });

    it("reads .dockerignore patterns as Docker does", () => {
      const ignored = dockerIgnore("node_modules\n**/*.test.ts\n/docs/*.md\n!docs/keep.md\n");
      expect(ignored("node_modules/x/index.js")).toBe(true);
      expect(ignored("lib/security/dev-pki.test.ts")).toBe(true);
      expect(ignored("lib/security/dev-pki.ts")).toBe(false);
      expect(ignored("docs/a.md")).toBe(true);
      expect(ignored("docs/keep.md")).toBe(false);
    });
  });
});
