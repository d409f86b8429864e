/**
 * Placing text values from the URL (path variables and query parameters) into a request's JSON
 * by field path (`a.b`, proto or JSON names): nested objects are created on the way, booleans
 * become JSON booleans, repeated fields take every value, and other text is left for the strict
 * decoder to judge (numbers, enums, timestamps and durations all have a JSON string form).
 */
import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import type { FieldViolation } from "./bad-request.js";
import { fieldByKey } from "./json-check.js";

function scalarJson(field: DescField, text: string): JsonValue {
  const isBool =
    (field.fieldKind === "scalar" || (field.fieldKind === "list" && field.listKind === "scalar")) &&
    field.scalar === ScalarType.BOOL;
  if (isBool && (text === "true" || text === "false")) return text === "true";
  return text;
}

function isLeaf(field: DescField): boolean {
  if (field.fieldKind === "scalar" || field.fieldKind === "enum") return true;
  if (field.fieldKind === "list") return field.listKind !== "message" || field.message.typeName.startsWith("google.protobuf.");
  if (field.fieldKind === "message") return field.message.typeName.startsWith("google.protobuf.");
  return false;
}

/**
 * Sets `values` at `path` (field names) of `target`, a JSON object of type `message`. Returns a
 * violation when the path names no field or does not end at a value field.
 */
export function setFieldValue(
  target: JsonObject,
  message: DescMessage,
  path: readonly string[],
  values: readonly string[],
): FieldViolation | undefined {
  const shown = path.join(".");
  let current = target;
  let type = message;
  for (let i = 0; i < path.length; i++) {
    const field = fieldByKey(type, path[i] ?? "");
    if (!field) return { field: shown, description: "unknown field" };
    const last = i === path.length - 1;
    if (last) {
      if (!isLeaf(field)) return { field: shown, description: "cannot be set from the URL" };
      const converted = values.map((v) => scalarJson(field, v));
      delete current[field.name]; // a value given under the proto name is replaced too
      current[field.jsonName] = field.fieldKind === "list" ? converted : (converted.at(-1) ?? "");
      return undefined;
    }
    if (field.fieldKind !== "message") return { field: shown, description: `${field.name} has no fields` };
    const next = current[field.jsonName];
    const child: JsonObject = typeof next === "object" && next !== null && !Array.isArray(next) ? next : {};
    current[field.jsonName] = child;
    current = child;
    type = field.message;
  }
  return { field: shown, description: "empty field path" };
}
