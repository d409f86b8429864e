// Copies the third-party .proto files the contracts import (google.api HTTP annotations and
// field behaviour, google.rpc status and error details) from the npm package `google-proto-files`
// into proto-vendor/, a git-ignored folder that buf.yaml declares as a second module.
// Nothing here contacts the Buf Schema Registry; the files come from node_modules alone.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const source = dirname(require.resolve("google-proto-files/package.json"));
const target = join(root, "proto-vendor");

/** The only third-party files the contracts may import. */
const files = [
  "google/api/annotations.proto",
  "google/api/http.proto",
  "google/api/field_behavior.proto",
  "google/rpc/status.proto",
  "google/rpc/code.proto",
  "google/rpc/error_details.proto",
];

rmSync(target, { recursive: true, force: true });
for (const file of files) {
  mkdirSync(dirname(join(target, file)), { recursive: true });
  cpSync(join(source, file), join(target, file));
}
const version = require("google-proto-files/package.json").version;
writeFileSync(join(target, "VERSION"), `google-proto-files ${version}\n`);
console.log(`proto-vendor: ${files.length} files from google-proto-files ${version}`);
