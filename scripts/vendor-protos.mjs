// Copies the third-party .proto files the platform uses into proto-vendor/, a git-ignored folder
// that buf.yaml declares as a second module: google.api HTTP annotations and field behaviour and
// google.rpc status and error details (imported by the contracts) from `google-proto-files`, and
// the standard gRPC health and reflection protocols (served by every service, and called by tests
// and tools through the generated client) from `grpc-health-check` and `@grpc/reflection`.
// Nothing here contacts the Buf Schema Registry; the files come from node_modules alone.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const target = join(root, "proto-vendor");
const packageDir = (name) => dirname(require.resolve(`${name}/package.json`));

/** The only third-party files: [npm package, path inside it, path under proto-vendor/]. */
const files = [
  ["google-proto-files", "google/api/annotations.proto"],
  ["google-proto-files", "google/api/http.proto"],
  ["google-proto-files", "google/api/field_behavior.proto"],
  ["google-proto-files", "google/rpc/status.proto"],
  ["google-proto-files", "google/rpc/code.proto"],
  ["google-proto-files", "google/rpc/error_details.proto"],
  ["grpc-health-check", "proto/health/v1/health.proto", "grpc/health/v1/health.proto"],
  ["@grpc/reflection", "build/proto/grpc/reflection/v1/reflection.proto", "grpc/reflection/v1/reflection.proto"],
];

rmSync(target, { recursive: true, force: true });
const versions = new Set();
for (const [pkg, from, to = from] of files) {
  mkdirSync(dirname(join(target, to)), { recursive: true });
  cpSync(join(packageDir(pkg), from), join(target, to));
  versions.add(`${pkg} ${require(`${pkg}/package.json`).version}`);
}
writeFileSync(join(target, "VERSION"), [...versions].join("\n") + "\n");
console.log(`proto-vendor: ${files.length} files from ${[...versions].join(", ")}`);
