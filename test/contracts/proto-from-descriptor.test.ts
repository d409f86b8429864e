// The printer behind the vendored buf/validate/validate.proto (scripts/proto-from-descriptor.mjs):
// a file printed from a descriptor compiles back to the same descriptor, for every construct the
// printer claims to know, and the comparison that guards the install notices a difference.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error: a build script in plain JavaScript, without type declarations.
import { compiledDifference, protoSourceOf } from "../../scripts/proto-from-descriptor.mjs";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const buf = join(root, "node_modules/.bin/buf");
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Compiles `files` (path -> source) with buf and returns the image's bytes. */
async function compile(files: Record<string, string>): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), "proto-print-"));
  dirs.push(dir);
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, "src", path)), { recursive: true });
    writeFileSync(join(dir, "src", path), source);
  }
  const image = join(dir, "image.binpb");
  await run(buf, ["build", join(dir, "src"), "--exclude-source-info", "-o", image]);
  return readFileSync(image);
}

/** The DescFile named `name` of a compiled image. */
function fileOf(image: Uint8Array, name: string): DescFile {
  const set = fromBinary(FileDescriptorSetSchema, image);
  const file = createFileRegistry(set).getFile(name);
  if (file === undefined) throw new Error(`${name} is not in the image`);
  return file;
}

const FIXTURE = `
syntax = "proto3";
package fixture.v1;
import "google/protobuf/descriptor.proto";
import "google/protobuf/timestamp.proto";
option java_multiple_files = true;
option go_package = "example.com/fixture;fixture";

// A custom option with a message value, as protovalidate's rules are.
message Note { string text = 1; repeated int32 codes = 2; Kind kind = 3; }
extend google.protobuf.FieldOptions { Note note = 50001; }
extend google.protobuf.MessageOptions { repeated string tags = 50002; }

enum Kind {
  KIND_UNSPECIFIED = 0;
  KIND_A = 1 [deprecated = true];
  reserved 5 to 9;
  reserved "KIND_OLD";
}

message Outer {
  option (tags) = "first";
  option (tags) = "second \\"quoted\\"\\n";
  reserved 20, 30 to 40;
  reserved "gone";
  message Inner { int64 big = 1 [jstype = JS_STRING]; }
  enum Mode { MODE_UNSPECIFIED = 0; MODE_ON = 1; }
  string name = 1 [(note) = { text: "a name" codes: [1, 2] kind: KIND_A }, json_name = "label"];
  optional int32 maybe = 2;
  repeated Inner inners = 3;
  map<string, Inner> by_key = 4;
  oneof choice {
    Mode mode = 5;
    google.protobuf.Timestamp at = 6 [deprecated = true];
  }
  bytes raw = 7;
}

service Things {
  rpc Get(Outer) returns (Outer.Inner) { option deprecated = true; }
  rpc Watch(Outer) returns (stream Outer.Inner);
}
`;

describe("protoSourceOf", () => {
  it("prints a file that compiles back to the same descriptor (messages, oneofs, maps, options, services)", async () => {
    const original = fileOf(await compile({ "fixture/v1/fixture.proto": FIXTURE }), "fixture/v1/fixture.proto");
    const printed = protoSourceOf(original, ["printed"]) as string;
    expect(printed).toContain("map<string, .fixture.v1.Outer.Inner> by_key = 4;");
    expect(printed).toContain("optional int32 maybe = 2;");
    const image = await compile({ "fixture/v1/fixture.proto": printed });
    expect(compiledDifference(original, image)).toBeUndefined();
  });

  it("prints protovalidate's validate.proto so that it compiles to the descriptor its package embeds", async () => {
    const printed = protoSourceOf(file_buf_validate_validate) as string;
    const image = await compile({ "buf/validate/validate.proto": printed });
    expect(compiledDifference(file_buf_validate_validate, image)).toBeUndefined();
  });

  it("notices a compiled file that differs from the descriptor", async () => {
    const original = fileOf(await compile({ "fixture/v1/fixture.proto": FIXTURE }), "fixture/v1/fixture.proto");
    const changed = (protoSourceOf(original) as string).replace("bytes raw = 7;", "bytes raw = 8;");
    const image = await compile({ "fixture/v1/fixture.proto": changed });
    expect(compiledDifference(original, image)).toMatch(/differs/);
  });
});
