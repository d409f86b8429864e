// Copies the third-party .proto files the platform uses into proto-vendor/, a git-ignored folder
// that buf.yaml declares as a second module: google.api HTTP annotations and field behaviour and
// google.rpc status and error details (imported by the contracts) from `google-proto-files`, and
// the standard gRPC health and reflection protocols (served by every service, and called by tests
// and tools through the generated client) from `grpc-health-check` and `@grpc/reflection`.
// buf/validate/validate.proto (protovalidate's field rules, which the contracts declare) comes from
// `@bufbuild/protovalidate`, which ships it only as the descriptor embedded in its generated code:
// the source is printed from that descriptor (proto-from-descriptor.mjs) and kept only once buf
// compiles it back to the very same descriptor.
// Nothing here contacts the Buf Schema Registry; the files come from node_modules alone.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

// protovalidate: printed from the descriptor its package embeds, then checked by compiling it.
const { file_buf_validate_validate: validateFile } = await import("@bufbuild/protovalidate/gen/buf/validate/validate_pb.js");
const { protoSourceOf, compiledDifference } = await import("./proto-from-descriptor.mjs");
const protovalidatePackage = JSON.parse(readFileSync(join(root, "node_modules/@bufbuild/protovalidate/package.json"), "utf8"));
const protovalidate = `@bufbuild/protovalidate ${protovalidatePackage.version}`;
const validatePath = join(target, validateFile.proto.name);
mkdirSync(dirname(validatePath), { recursive: true });
writeFileSync(
  validatePath,
  protoSourceOf(validateFile, [
    `${validateFile.proto.name}, printed by scripts/vendor-protos.mjs from the descriptor that`,
    `${protovalidate} embeds (its package ships no .proto source). The rules' documentation is`,
    "at https://protovalidate.com and in the upstream file (github.com/bufbuild/protovalidate).",
  ]),
);
const scratch = mkdtempSync(join(tmpdir(), "proto-vendor-"));
try {
  const image = join(scratch, "validate.binpb");
  execFileSync(join(root, "node_modules/.bin/buf"), ["build", target, "--path", validatePath, "--exclude-source-info", "-o", image], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const difference = compiledDifference(validateFile, readFileSync(image));
  if (difference !== undefined) {
    rmSync(target, { recursive: true, force: true });
    throw new Error(`proto-vendor: ${validateFile.proto.name} printed from ${protovalidate} does not compile to its descriptor: ${difference}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
versions.add(protovalidate);

writeFileSync(join(target, "VERSION"), [...versions].join("\n") + "\n");
console.log(`proto-vendor: ${files.length + 1} files from ${[...versions].join(", ")}`);
