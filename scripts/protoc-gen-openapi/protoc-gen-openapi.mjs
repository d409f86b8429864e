#!/usr/bin/env node
// protoc-gen-openapi as buf.gen.yaml runs it: main.ts and everything it imports bundled by
// esbuild (already the build's compiler, see scripts/build.mjs) into one module in memory, which
// then runs as plain JavaScript. The same code as `node --import tsx main.ts`, but it starts in a
// fraction of the CPU time: tsx compiles each source as it is loaded, and buf starts the plugin
// once per input.
import path from "node:path";
import * as esbuild from "esbuild";

const result = await esbuild.build({
  entryPoints: [path.join(import.meta.dirname, "main.ts")],
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  write: false,
  logLevel: "warning",
});
const code = result.outputFiles[0]?.text;
if (code === undefined) throw new Error("protoc-gen-openapi: esbuild wrote no bundle");
await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
