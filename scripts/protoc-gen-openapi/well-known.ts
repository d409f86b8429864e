/**
 * The JSON Schemas of the protobuf well-known types that have a JSON form of their own in the
 * proto3 JSON mapping (https://protobuf.dev/programming-guides/json/): Timestamp as an RFC 3339
 * string, Duration as `"1.5s"`, FieldMask as comma-separated paths, the wrappers as their bare
 * value, Struct/Value/ListValue as free JSON, Any as an object with `@type`.
 */
import { ScalarType, type JsonObject } from "@bufbuild/protobuf";
import { scalarSchema } from "./scalars.js";

const WELL_KNOWN: Readonly<Record<string, JsonObject>> = {
  "google.protobuf.Timestamp": {
    type: "string",
    format: "date-time",
    description: "An RFC 3339 time in UTC, e.g. `2030-01-02T15:04:05.5Z`.",
  },
  "google.protobuf.Duration": {
    type: "string",
    pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
    description: "Seconds with up to nine fractional digits and an `s` suffix, e.g. `1.5s`.",
  },
  "google.protobuf.FieldMask": {
    type: "string",
    description: "Comma-separated lowerCamelCase field paths, e.g. `dropoff,pickupTime`.",
  },
  "google.protobuf.Struct": { type: "object", additionalProperties: true, description: "Any JSON object." },
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.ListValue": { type: "array", items: {}, description: "Any JSON array." },
  "google.protobuf.NullValue": { type: "null" },
  "google.protobuf.Any": {
    type: "object",
    required: ["@type"],
    properties: { "@type": { type: "string", description: "The type URL of the embedded message." } },
    additionalProperties: true,
    description: "A message of any type: its JSON fields next to `@type` (or `value` for types with their own JSON form).",
  },
  "google.protobuf.Empty": { type: "object", description: "An empty object." },
  "google.protobuf.DoubleValue": scalarSchema(ScalarType.DOUBLE),
  "google.protobuf.FloatValue": scalarSchema(ScalarType.FLOAT),
  "google.protobuf.Int64Value": scalarSchema(ScalarType.INT64),
  "google.protobuf.UInt64Value": scalarSchema(ScalarType.UINT64),
  "google.protobuf.Int32Value": scalarSchema(ScalarType.INT32),
  "google.protobuf.UInt32Value": scalarSchema(ScalarType.UINT32),
  "google.protobuf.BoolValue": scalarSchema(ScalarType.BOOL),
  "google.protobuf.StringValue": scalarSchema(ScalarType.STRING),
  "google.protobuf.BytesValue": scalarSchema(ScalarType.BYTES),
};

/** Types whose JSON form is a string, number or boolean, and which a URL can therefore carry. */
const TEXT_FORMS: ReadonlySet<string> = new Set(
  Object.entries(WELL_KNOWN)
    .filter(([, schema]) => ["string", "number", "integer", "boolean"].includes(String(schema.type)))
    .map(([name]) => name),
);

/** Whether `typeName` is a well-known type with a JSON form of its own. */
export function isWellKnown(typeName: string): boolean {
  return Object.hasOwn(WELL_KNOWN, typeName);
}

export function hasTextForm(typeName: string): boolean {
  return TEXT_FORMS.has(typeName);
}

/** The schema of a well-known type by full name, or undefined for an ordinary message or enum. */
export function wellKnownSchema(typeName: string): JsonObject | undefined {
  const schema = isWellKnown(typeName) ? WELL_KNOWN[typeName] : undefined;
  return schema === undefined ? undefined : structuredClone(schema);
}
