/**
 * The OpenAPI plugin (scripts/protoc-gen-openapi) shows the contracts' protovalidate rules: a
 * fixture contract declaring every kind of rule is compiled by buf into a temporary directory and
 * handed to the plugin as `buf generate` would, and the document it writes is checked.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { create, fromBinary, type JsonObject } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiPlugin } from "../../scripts/protoc-gen-openapi/plugin.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const BUF = path.join(ROOT, "node_modules/.bin/buf");
const FIXTURE = "example/rules/v1/rules.proto";

const CONTRACT = `syntax = "proto3";

package example.rules.v1;

import "buf/validate/validate.proto";
import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";

service RulesService {
  rpc CreateThing(CreateThingRequest) returns (Thing) {
    option (google.api.http) = { post: "/r1/things" body: "*" };
  }
  rpc GetThing(GetThingRequest) returns (Thing) {
    option (google.api.http) = { get: "/r1/things/{thing_id}" };
  }
}

enum Color {
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
  COLOR_GREEN = 2;
  COLOR_BLUE = 3;
}

message Thing {
  option (buf.validate.message).cel = {
    id: "count.small_when_whole"
    message: "count must stay below 50 when ratio is 1"
    expression: "this.ratio < 1.0 || this.count < 50"
  };
  option (buf.validate.message).oneof = { fields: ["plain", "kind"] };
  string name = 1 [(buf.validate.field).string = { min_len: 1, max_len: 64, pattern: "^[a-z]+$" }];
  string code = 2 [(buf.validate.field).string.len = 4];
  int32 count = 3 [(buf.validate.field).int32 = { gte: 1, lt: 100 }];
  double ratio = 4 [(buf.validate.field).double = { gt: 0, lte: 1 }];
  int64 offset = 5 [(buf.validate.field).int64 = { gte: -5, in: [-5, 0, 5] }];
  uint64 big = 6 [(buf.validate.field).uint64.lte = 18446744073709551615];
  Color color = 7 [(buf.validate.field).enum = { defined_only: true, not_in: [0] }];
  Color shade = 8 [(buf.validate.field).enum = { in: [1, 3] }];
  Color any_color = 9 [(buf.validate.field).enum.defined_only = true];
  repeated string tags = 10 [(buf.validate.field).repeated = {
    min_items: 1
    max_items: 5
    unique: true
    items: { string: { max_len: 10 } }
  }];
  repeated Color colors = 11 [(buf.validate.field).repeated.items.enum.not_in = 0];
  map<string, int32> scores = 12 [(buf.validate.field).map = {
    max_pairs: 3
    keys: { string: { min_len: 2 } }
    values: { int32: { gte: 0 } }
  }];
  string email = 13 [(buf.validate.field).string.email = true];
  int32 outside = 14 [(buf.validate.field).int32 = { gt: 10, lt: 5 }];
  string note = 15 [(buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE, (buf.validate.field).string.min_len = 3];
  string skipped = 16 [(buf.validate.field).ignore = IGNORE_ALWAYS, (buf.validate.field).string.min_len = 3];
  string owner = 17 [(buf.validate.field).required = true];
  string label = 18 [(google.api.field_behavior) = REQUIRED];
  string kind = 19 [(buf.validate.field).string = { in: ["x", "y"], not_in: ["z"] }];
  string plain = 20;
  oneof choice {
    option (buf.validate.oneof).required = true;
    string a = 21;
    string b = 22;
  }
  string id = 23 [(google.api.field_behavior) = OUTPUT_ONLY, (buf.validate.field).required = true];
  google.protobuf.Timestamp due = 25 [(buf.validate.field).timestamp.gt_now = true];
  google.protobuf.Duration wait = 26 [(buf.validate.field).duration = { gte: { seconds: 1 }, lt: { seconds: 90, nanos: 500000000 } }];
  string checked = 24 [(buf.validate.field).cel = {
    id: "checked.even"
    message: "must have an even length"
    expression: "size(this) % 2 == 0"
  }];
}

message CreateThingRequest {
  Thing thing = 1 [(buf.validate.field).required = true];
}

message GetThingRequest {
  string thing_id = 1 [(buf.validate.field).string.pattern = "^t-[0-9]+$"];
  int32 page_size = 2 [(buf.validate.field).int32 = { gte: 0, lte: 50 }];
}
`;

const run = promisify(execFile);

/** The OpenAPI document the plugin writes for the fixture contract. */
async function generate(dir: string): Promise<JsonObject> {
  writeFileSync(path.join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: fixture\n  - path: vendor\n");
  // The vendored protos the fixture imports: protovalidate's rules and google.api.
  for (const folder of ["buf", "google/api"]) {
    cpSync(path.join(ROOT, "proto-vendor", folder), path.join(dir, "vendor", folder), { recursive: true });
  }
  const fixture = path.join(dir, "fixture", FIXTURE);
  mkdirSync(path.dirname(fixture), { recursive: true });
  writeFileSync(fixture, CONTRACT);
  const image = path.join(dir, "image.binpb");
  await run(BUF, ["build", dir, "-o", image], { cwd: dir });
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(image));
  const plugin = openApiPlugin({
    file: "openapi/rules.openapi.json",
    apis: [{ service: "example.rules.v1.RulesService", restPrefix: "/r1/" }],
    info: { title: "Rules", version: "r1" },
  });
  const response = plugin.run(create(CodeGeneratorRequestSchema, { fileToGenerate: [FIXTURE], protoFile: set.file }));
  expect(response.error).toBe("");
  expect(response.file.map((f) => f.name)).toEqual(["openapi/rules.openapi.json"]);
  return JSON.parse(response.file[0]?.content ?? "") as JsonObject;
}

function obj(value: unknown, what: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as JsonObject;
}

describe("the OpenAPI plugin shows the contracts' field rules", () => {
  let dir = "";
  let doc: JsonObject = {};
  let thing: JsonObject = {};
  let props: JsonObject = {};

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "openapi-rules-"));
    doc = await generate(dir);
    thing = obj(obj(obj(doc.components, "components").schemas, "schemas")["example.rules.v1.Thing"], "Thing");
    props = obj(thing.properties, "properties");
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("maps string lengths, patterns, allowed values and formats", () => {
    expect(props.name).toEqual({ type: "string", minLength: 1, maxLength: 64, pattern: "^[a-z]+$" });
    expect(props.code).toEqual({ type: "string", minLength: 4, maxLength: 4 });
    expect(props.kind).toEqual({ type: "string", enum: ["x", "y"], not: { enum: ["z"] } });
    expect(props.email).toEqual({ type: "string", format: "email" });
    expect(props.plain).toEqual({ type: "string" });
  });

  it("maps numeric bounds, inclusive and exclusive, and a range that excludes its middle", () => {
    expect(props.count).toEqual({ type: "integer", format: "int32", minimum: 1, exclusiveMaximum: 100 });
    expect(props.ratio).toEqual({ type: "number", format: "double", exclusiveMinimum: 0, maximum: 1 });
    expect(props.outside).toEqual({ type: "integer", format: "int32", anyOf: [{ exclusiveMinimum: 10 }, { exclusiveMaximum: 5 }] });
    // 64-bit integers are strings in JSON: the allowed values are too; a bound beyond a JSON number is left out.
    expect(props.offset).toMatchObject({ type: "string", format: "int64", minimum: -5, enum: ["-5", "0", "5"] });
    expect(props.big).toEqual({ type: "string", format: "uint64", pattern: "^[0-9]+$" });
  });

  it("maps enum rules to the names allowed", () => {
    const ref = { $ref: "#/components/schemas/example.rules.v1.Color" };
    expect(props.color).toEqual({ ...ref, enum: ["COLOR_RED", "COLOR_GREEN", "COLOR_BLUE"] });
    expect(props.shade).toEqual({ ...ref, enum: ["COLOR_RED", "COLOR_BLUE"] });
    expect(props.anyColor).toEqual(ref); // the enum's own schema lists exactly its defined names
    expect(obj(obj(doc.components, "components").schemas, "schemas")["example.rules.v1.Color"]).toEqual({
      type: "string",
      enum: ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN", "COLOR_BLUE"],
    });
  });

  it("maps repeated and map limits, and the rules of their items, keys and values", () => {
    expect(props.tags).toEqual({ type: "array", items: { type: "string", maxLength: 10 }, minItems: 1, maxItems: 5, uniqueItems: true });
    expect(props.colors).toEqual({
      type: "array",
      items: { $ref: "#/components/schemas/example.rules.v1.Color", enum: ["COLOR_RED", "COLOR_GREEN", "COLOR_BLUE"] },
    });
    expect(props.scores).toEqual({
      type: "object",
      propertyNames: { type: "string", minLength: 2 },
      additionalProperties: { type: "integer", format: "int32", minimum: 0 },
      maxProperties: 3,
    });
  });

  it("notes rules exempting the zero value and leaves out rules always ignored", () => {
    expect(props.note).toMatchObject({ type: "string", minLength: 3 });
    expect(String(obj(props.note, "note").description)).toContain("An empty string is accepted too");
    expect(props.skipped).toEqual({ type: "string" });
  });

  it("states CEL rules, oneof rules and time rules in the descriptions of their field and message", () => {
    expect(props.checked).toEqual({ type: "string", description: "Checked: `checked.even`: must have an even length." });
    expect(props.due).toEqual({ $ref: "#/components/schemas/google.protobuf.Timestamp", description: "Checked: must lie in the future." });
    expect(props.wait).toEqual({
      $ref: "#/components/schemas/google.protobuf.Duration",
      description: "Checked: must be at least `1s`; must be shorter than `90.500s`.",
    });
    expect(thing.description).toBe(
      "Checked as a whole: `count.small_when_whole`: count must stay below 50 when ratio is 1; at most one of `plain`, `kind` is set.",
    );
  });

  it("lists required fields (buf.validate required and field_behavior REQUIRED), not output-only ones", () => {
    expect(thing.required).toEqual(["owner", "label"]);
    expect(String(obj(props.a, "a").description)).toContain("exactly one of `a`, `b`");
    const create = obj(obj(obj(doc.paths, "paths")["/r1/things"], "item").post, "post");
    expect(obj(create.requestBody, "body").required).toBe(true);
  });

  it("shows the rules of path and query parameters", () => {
    const get = obj(obj(obj(doc.paths, "paths")["/r1/things/{thing_id}"], "item").get, "get");
    const parameters = (get.parameters as JsonObject[]).filter((p) => p.in !== "header" && p.$ref === undefined);
    expect(parameters).toEqual([
      { name: "thing_id", in: "path", required: true, description: "The request's `thing_id`.", schema: { type: "string", pattern: "^t-[0-9]+$" } },
      { name: "pageSize", in: "query", schema: { type: "integer", format: "int32", minimum: 0, maximum: 50 } },
    ]);
  });
});
