/**
 * Messages and enums as JSON Schemas of their proto3 JSON form, with the fields' protovalidate
 * rules (field-rules.ts), collected as OpenAPI components named by full type name
 * (`dronedelivery.api.v1.Location`). Every message and enum field is a `$ref`, so recursive
 * messages need nothing special; `components()` writes out every type reached so far and, in
 * turn, every type those reach.
 */
import type { DescEnum, DescField, DescMessage, JsonObject } from "@bufbuild/protobuf";
import { isInputOnly, isOutputOnly, isRequired } from "./field-behavior.js";
import { applyFieldRules, messageRulesNote, oneofRequired } from "./field-rules.js";
import { mapKeySchema, scalarSchema } from "./scalars.js";
import { wellKnownSchema } from "./well-known.js";

export const SCHEMA_REF_PREFIX = "#/components/schemas/";

export interface SchemaSet {
  /** A `$ref` to the component of `desc`, which `components()` will then include. */
  ref(desc: DescMessage | DescEnum): JsonObject;
  /** The schema of a field's JSON value, marked readOnly, writeOnly or deprecated as it is. */
  field(field: DescField): JsonObject;
  /** The object schema of `message`, without the fields whose proto names are in `omit`. */
  message(message: DescMessage, omit?: ReadonlySet<string>): JsonObject;
  /** The components of every type reached, by name, sorted. */
  components(): Record<string, JsonObject>;
}

function enumSchema(desc: DescEnum): JsonObject {
  const schema: JsonObject = { type: "string", enum: desc.values.map((v) => v.name) };
  if (desc.deprecated) schema.deprecated = true;
  return schema;
}

function oneofNote(field: DescField): string | undefined {
  const oneof = field.oneof;
  if (!oneof) return undefined;
  const members = oneof.fields.map((f) => `\`${f.jsonName}\``).join(", ");
  return `One of \`${oneof.name}\`: ${oneofRequired(oneof) ? "exactly" : "at most"} one of ${members} is set.`;
}

export function createSchemaSet(): SchemaSet {
  const reached = new Map<string, DescMessage | DescEnum>();

  function ref(desc: DescMessage | DescEnum): JsonObject {
    if (!reached.has(desc.typeName)) reached.set(desc.typeName, desc);
    return { $ref: `${SCHEMA_REF_PREFIX}${desc.typeName}` };
  }

  function valueSchema(field: DescField): JsonObject {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return ref(field.enum);
      case "message":
        return ref(field.message);
      case "list":
        return {
          type: "array",
          items: field.listKind === "scalar" ? scalarSchema(field.scalar) : ref(field.listKind === "enum" ? field.enum : field.message),
        };
      case "map":
        return {
          type: "object",
          propertyNames: mapKeySchema(field.mapKey),
          additionalProperties: field.mapKind === "scalar" ? scalarSchema(field.scalar) : ref(field.mapKind === "enum" ? field.enum : field.message),
        };
    }
  }

  function field(desc: DescField): JsonObject {
    const schema = valueSchema(desc);
    const note = oneofNote(desc);
    if (note) schema.description = note;
    applyFieldRules(desc, schema);
    if (isOutputOnly(desc)) schema.readOnly = true;
    if (isInputOnly(desc)) schema.writeOnly = true;
    if (desc.deprecated) schema.deprecated = true;
    return schema;
  }

  function message(desc: DescMessage, omit: ReadonlySet<string> = new Set()): JsonObject {
    const properties: JsonObject = {};
    const required: string[] = [];
    for (const f of desc.fields) {
      if (omit.has(f.name)) continue;
      properties[f.jsonName] = field(f);
      if (isRequired(f)) required.push(f.jsonName);
    }
    const schema: JsonObject = { type: "object", properties };
    if (required.length > 0) schema.required = required;
    const rules = messageRulesNote(desc);
    if (rules) schema.description = rules;
    if (desc.deprecated) schema.deprecated = true;
    return schema;
  }

  function components(): Record<string, JsonObject> {
    const written = new Map<string, JsonObject>();
    for (;;) {
      const pending = [...reached.values()].filter((d) => !written.has(d.typeName));
      if (pending.length === 0) break;
      for (const desc of pending) {
        written.set(desc.typeName, wellKnownSchema(desc.typeName) ?? (desc.kind === "enum" ? enumSchema(desc) : message(desc)));
      }
    }
    return Object.fromEntries([...written].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  return { ref, field, message, components };
}
