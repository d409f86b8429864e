/**
 * Strict checking of a request's JSON before decoding: every key must name a field, and every
 * value must decode as its field's type. Each problem becomes a violation naming the field by its
 * proto path (`package_info.weight_kg`, `items[2].name`), so a client learns exactly what to fix.
 */
import { fromJson, type DescField, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import type { FieldViolation } from "./bad-request.js";

/** The field of `message` named `key` by its JSON name or its proto name. */
export function fieldByKey(message: DescMessage, key: string): DescField | undefined {
  return message.fields.find((f) => f.jsonName === key || f.name === key);
}

/** Messages with their own JSON form (Timestamp, Duration, FieldMask, Struct, wrappers, ...). */
function hasOwnJsonForm(message: DescMessage): boolean {
  return message.typeName.startsWith("google.protobuf.");
}

function isPlainObject(value: JsonValue): value is { [k: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // "cannot decode field x.y.Z.f from JSON: expected number (int32), got "a"" -> the reason only.
  const reason = /from JSON: (.*)$/s.exec(text)?.[1];
  return reason ?? text;
}

/** Decodes `{ [key]: value }` alone as `message`, reporting the failure at `path`. */
function checkLeaf(message: DescMessage, key: string, value: JsonValue, path: string, out: FieldViolation[]): void {
  try {
    fromJson(message, { [key]: value }, { ignoreUnknownFields: false });
  } catch (error) {
    out.push({ field: path, description: describe(error) });
  }
}

function checkMessage(message: DescMessage, json: JsonValue, path: string, out: FieldViolation[]): void {
  if (!isPlainObject(json)) {
    out.push({ field: path, description: `expected a JSON object for ${message.typeName}` });
    return;
  }
  for (const [key, value] of Object.entries(json)) {
    const field = fieldByKey(message, key);
    const fieldPath = path ? `${path}.${field?.name ?? key}` : (field?.name ?? key);
    if (!field) {
      out.push({ field: fieldPath, description: "unknown field" });
      continue;
    }
    if (value === null) continue;
    if (field.fieldKind === "message" && !hasOwnJsonForm(field.message)) {
      checkMessage(field.message, value, fieldPath, out);
    } else if (field.fieldKind === "list" && field.listKind === "message" && !hasOwnJsonForm(field.message)) {
      if (!Array.isArray(value)) {
        out.push({ field: fieldPath, description: "expected a JSON array" });
        continue;
      }
      const element = field.message;
      value.forEach((item, i) => checkMessage(element, item, `${fieldPath}[${i}]`, out));
    } else {
      checkLeaf(message, key, value, fieldPath, out);
    }
  }
}

/** Every unknown key and undecodable value of `json` as a request of type `message`. */
export function jsonViolations(message: DescMessage, json: JsonValue): FieldViolation[] {
  const out: FieldViolation[] = [];
  checkMessage(message, json, "", out);
  return out;
}
