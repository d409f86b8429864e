/**
 * The field rules the contracts declare with protovalidate (`(buf.validate.field)`), as the JSON
 * Schema keywords that say the same of a field's JSON value:
 * - strings: `len`, `min_len`, `max_len` -> `minLength`/`maxLength`, `pattern`, `const`, `in`
 *   -> `enum`, `not_in` -> `not: { enum }`, and the well-known formats (`email`, `uuid`, `uri`, ...);
 * - numbers: `gt`, `gte`, `lt`, `lte` -> `exclusiveMinimum`, `minimum`, `exclusiveMaximum`,
 *   `maximum` (a lower bound above the upper one allows the values outside the range, as in
 *   protovalidate), `const`, `in`, `not_in`. 64-bit integers are decimal strings in JSON, so
 *   their bounds are shown but a JSON Schema validator does not apply them (and a bound beyond
 *   what a JSON number holds exactly is left out);
 * - enums: `const`, `in`, `not_in` -> the names allowed, as `enum` next to the enum's `$ref`
 *   (`defined_only` adds nothing: the enum's own schema lists exactly its defined names);
 * - repeated fields: `min_items`, `max_items`, `unique`, and `items` applied to the item schema;
 *   maps: `min_pairs`, `max_pairs`, `keys` and `values` applied to the key and value schemas.
 * `required` puts the field in its message's `required` list (field-behavior.ts). CEL rules, of a
 * field or of a message as a whole, and the rules of Timestamp and Duration fields (whose JSON
 * forms are strings) are stated in the description. Other rules JSON Schema cannot state (byte
 * lengths, prefixes, suffixes) are not shown; the services still enforce them.
 */
import {
  getOption,
  hasOption,
  isFieldSet,
  ScalarType,
  toJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescOneof,
  type JsonObject,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  field as fieldRulesOption,
  file_buf_validate_validate,
  Ignore,
  message as messageRulesOption,
  oneof as oneofRulesOption,
  type EnumRules,
  type FieldRules,
  type MapRules,
  type RepeatedRules,
  type Rule,
  type StringRules,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

/** The `(buf.validate.field)` rules of `field`, or undefined when it declares none. */
export function fieldRules(field: DescField): FieldRules | undefined {
  return hasOption(field, fieldRulesOption) ? getOption(field, fieldRulesOption) : undefined;
}

/** Whether the rules say the field must be set. */
export function requiredByRules(field: DescField): boolean {
  return fieldRules(field)?.required === true;
}

/** The CEL rules of a message or field, each as "`id`: message" (or its expression when it has no message). */
function celNotes(rules: { readonly cel: readonly Rule[]; readonly celExpression: readonly string[] }): string[] {
  return [
    ...rules.cel.map((rule) => (rule.id === "" ? "" : `\`${rule.id}\`: `) + (rule.message || `\`${rule.expression}\``)),
    ...rules.celExpression.map((expression) => `\`${expression}\``),
  ];
}

/**
 * What `(buf.validate.message)` says of a message as a whole, as a sentence for its description:
 * its CEL rules and its oneof rules (at most, or exactly, one of some fields is set).
 */
export function messageRulesNote(message: DescMessage): string | undefined {
  if (!hasOption(message, messageRulesOption)) return undefined;
  const rules = getOption(message, messageRulesOption);
  const notes = celNotes(rules);
  for (const oneof of rules.oneof) {
    const names = oneof.fields.map((name) => `\`${message.fields.find((f) => f.name === name)?.jsonName ?? name}\``);
    notes.push(`${oneof.required ? "exactly" : "at most"} one of ${names.join(", ")} is set`);
  }
  return notes.length === 0 ? undefined : `Checked as a whole: ${notes.join("; ")}.`;
}

/** Whether `(buf.validate.oneof).required` says exactly one field of the oneof must be set. */
export function oneofRequired(oneof: DescOneof): boolean {
  return hasOption(oneof, oneofRulesOption) && getOption(oneof, oneofRulesOption).required;
}

/** A rule's number as JSON, or undefined for a 64-bit one beyond what a JSON number holds exactly. */
function jsonNumber(value: bigint | number): number | undefined {
  if (typeof value === "number") return value;
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

/** Sets `keyword` to `value` when there is one. */
function put(out: JsonObject, keyword: string, value: JsonValue | undefined): void {
  if (value !== undefined) out[keyword] = value;
}

/** The numbers of `values` that JSON holds exactly. */
function jsonNumbers(values: readonly (bigint | number)[]): number[] {
  return values.map(jsonNumber).filter((n): n is number => n !== undefined);
}

/** The numeric rules messages share this shape (Int32Rules, DoubleRules, UInt64Rules, ...). */
interface NumericRules {
  readonly const: number | bigint;
  readonly lessThan: { case: "lt" | "lte"; value: number | bigint } | { case: undefined; value?: undefined };
  readonly greaterThan: { case: "gt" | "gte"; value: number | bigint } | { case: undefined; value?: undefined };
  readonly in: readonly (number | bigint)[];
  readonly notIn: readonly (number | bigint)[];
}

/** Whether the rule `localName` of a rules message is set (the rules are proto2: they have presence). */
function isRuleSet(rules: Message, localName: string): boolean {
  const desc = file_buf_validate_validate.messages
    .find((m) => m.typeName === rules.$typeName)
    ?.fields.find((f) => f.localName === localName);
  return desc !== undefined && isFieldSet(rules, desc);
}

/**
 * The keywords of numeric rules. The values of 64-bit integers (`asText`) are decimal strings in
 * JSON, so `const` and the `in`/`not_in` lists name them as strings.
 */
function numericKeywords(rules: NumericRules, constSet: boolean, asText: boolean): JsonObject {
  const out: JsonObject = {};
  const values = (list: readonly (bigint | number)[]): JsonValue[] => (asText ? list.map(String) : jsonNumbers(list));
  if (constSet) out.const = values([rules.const])[0] ?? null;
  const lower = rules.greaterThan;
  const upper = rules.lessThan;
  const lowerKeyword = lower.case === "gt" ? "exclusiveMinimum" : "minimum";
  const upperKeyword = upper.case === "lt" ? "exclusiveMaximum" : "maximum";
  const low = lower.case === undefined ? undefined : jsonNumber(lower.value);
  const high = upper.case === undefined ? undefined : jsonNumber(upper.value);
  if (low !== undefined && high !== undefined && low > high) {
    // protovalidate reads `gt: 10, lt: 5` as "above 10 or below 5".
    out.anyOf = [{ [lowerKeyword]: low }, { [upperKeyword]: high }];
  } else {
    put(out, lowerKeyword, low);
    put(out, upperKeyword, high);
  }
  if (rules.in.length > 0) out.enum = values(rules.in);
  if (rules.notIn.length > 0) out.not = { enum: values(rules.notIn) };
  return out;
}

/** JSON Schema formats of the well-known string kinds that have one. */
const STRING_FORMATS: Readonly<Partial<Record<NonNullable<StringRules["wellKnown"]["case"]>, string>>> = {
  email: "email",
  hostname: "hostname",
  ipv4: "ipv4",
  ipv6: "ipv6",
  uri: "uri",
  uriRef: "uri-reference",
  uuid: "uuid",
};

function stringKeywords(rules: StringRules, constSet: boolean): JsonObject {
  const out: JsonObject = {};
  const set = (name: keyof StringRules & string) => isRuleSet(rules, name);
  if (constSet) out.const = rules.const;
  if (set("len")) {
    put(out, "minLength", jsonNumber(rules.len));
    put(out, "maxLength", jsonNumber(rules.len));
  }
  if (set("minLen")) put(out, "minLength", jsonNumber(rules.minLen));
  if (set("maxLen")) put(out, "maxLength", jsonNumber(rules.maxLen));
  if (set("pattern")) out.pattern = rules.pattern;
  if (rules.in.length > 0) out.enum = [...rules.in];
  if (rules.notIn.length > 0) out.not = { enum: [...rules.notIn] };
  const known = rules.wellKnown;
  if (known.case !== undefined && known.value === true) {
    const format = STRING_FORMATS[known.case];
    if (format !== undefined) out.format = format;
  }
  return out;
}

function enumKeywords(rules: EnumRules, desc: DescEnum | undefined, constSet: boolean): JsonObject {
  if (!desc) return {};
  const names = (numbers: readonly number[]) => desc.values.filter((v) => numbers.includes(v.number)).map((v) => v.name);
  let allowed = desc.values.map((v) => v.name);
  let narrowed = false;
  if (constSet) {
    allowed = names([rules.const]);
    narrowed = true;
  }
  if (rules.in.length > 0) {
    const inNames = names(rules.in);
    allowed = allowed.filter((n) => inNames.includes(n));
    narrowed = true;
  }
  if (rules.notIn.length > 0) {
    const outNames = names(rules.notIn);
    allowed = allowed.filter((n) => !outNames.includes(n));
    narrowed = true;
  }
  return narrowed ? { enum: allowed } : {};
}

function repeatedKeywords(rules: RepeatedRules): JsonObject {
  const out: JsonObject = {};
  if (isRuleSet(rules, "minItems")) put(out, "minItems", jsonNumber(rules.minItems));
  if (isRuleSet(rules, "maxItems")) put(out, "maxItems", jsonNumber(rules.maxItems));
  if (rules.unique) out.uniqueItems = true;
  return out;
}

function mapKeywords(rules: MapRules): JsonObject {
  const out: JsonObject = {};
  if (isRuleSet(rules, "minPairs")) put(out, "minProperties", jsonNumber(rules.minPairs));
  if (isRuleSet(rules, "maxPairs")) put(out, "maxProperties", jsonNumber(rules.maxPairs));
  return out;
}

/** The keywords `rules` give a single value (not a list or map) of `enumDesc` when it is an enum. */
function valueKeywords(rules: FieldRules, enumDesc: DescEnum | undefined): JsonObject {
  const type = rules.type;
  const constSet = type.case !== undefined && isRuleSet(type.value, "const");
  switch (type.case) {
    case undefined:
      return {};
    case "string":
      return stringKeywords(type.value, constSet);
    case "enum":
      return enumKeywords(type.value, enumDesc, constSet);
    case "float":
    case "double":
    case "int32":
    case "uint32":
    case "sint32":
    case "fixed32":
    case "sfixed32":
      return numericKeywords(type.value, constSet, false);
    case "int64":
    case "uint64":
    case "sint64":
    case "fixed64":
    case "sfixed64":
      return numericKeywords(type.value, constSet, true);
    default:
      return {};
  }
}

/** A Duration in its JSON form, e.g. `1.5s`. */
function durationText(duration: Duration | undefined): string {
  return `\`${String(duration ? toJson(DurationSchema, duration) : "0s")}\``;
}

/** A Timestamp in its JSON form, an RFC 3339 time. */
function timestampText(timestamp: Timestamp): string {
  return `\`${String(toJson(TimestampSchema, timestamp))}\``;
}

/** The rules of Timestamp and Duration fields, whose JSON forms are strings, as phrases. */
function timeNotes(rules: FieldRules): string[] {
  const notes: string[] = [];
  const type = rules.type;
  if (type.case === "timestamp") {
    const t = type.value;
    if (t.const) notes.push(`must be ${timestampText(t.const)}`);
    if (t.greaterThan.case === "gtNow" && t.greaterThan.value) notes.push("must lie in the future");
    if (t.greaterThan.case === "gt") notes.push(`must lie after ${timestampText(t.greaterThan.value)}`);
    if (t.greaterThan.case === "gte") notes.push(`must not lie before ${timestampText(t.greaterThan.value)}`);
    if (t.lessThan.case === "ltNow" && t.lessThan.value) notes.push("must lie in the past");
    if (t.lessThan.case === "lt") notes.push(`must lie before ${timestampText(t.lessThan.value)}`);
    if (t.lessThan.case === "lte") notes.push(`must not lie after ${timestampText(t.lessThan.value)}`);
    if (t.within) notes.push(`must lie within ${durationText(t.within)} of now`);
  } else if (type.case === "duration") {
    const d = type.value;
    if (d.const) notes.push(`must be ${durationText(d.const)}`);
    if (d.greaterThan.case === "gt") notes.push(`must be longer than ${durationText(d.greaterThan.value)}`);
    if (d.greaterThan.case === "gte") notes.push(`must be at least ${durationText(d.greaterThan.value)}`);
    if (d.lessThan.case === "lt") notes.push(`must be shorter than ${durationText(d.lessThan.value)}`);
    if (d.lessThan.case === "lte") notes.push(`must be at most ${durationText(d.lessThan.value)}`);
    if (d.in.length > 0) notes.push(`must be one of ${d.in.map(durationText).join(", ")}`);
    if (d.notIn.length > 0) notes.push(`must be none of ${d.notIn.map(durationText).join(", ")}`);
  }
  return notes;
}

/**
 * Adds to `schema` (a field's value schema, as schemas.ts writes it) the keywords of the field's
 * rules. Rules ignored always change nothing; rules ignored for the zero value are shown with a
 * note that the zero value is accepted too.
 */
export function applyFieldRules(field: DescField, schema: JsonObject): void {
  const rules = fieldRules(field);
  if (!rules || rules.ignore === Ignore.ALWAYS) return;
  let keywords: JsonObject;
  switch (field.fieldKind) {
    case "scalar":
      keywords = valueKeywords(rules, undefined);
      break;
    case "enum":
      keywords = valueKeywords(rules, field.enum);
      break;
    case "message":
      keywords = {};
      break;
    case "list": {
      keywords = rules.type.case === "repeated" ? repeatedKeywords(rules.type.value) : {};
      const itemRules = rules.type.case === "repeated" ? rules.type.value.items : undefined;
      const items = schema.items;
      if (itemRules && itemRules.ignore !== Ignore.ALWAYS && isObject(items)) {
        Object.assign(items, valueKeywords(itemRules, field.listKind === "enum" ? field.enum : undefined));
      }
      break;
    }
    case "map": {
      keywords = rules.type.case === "map" ? mapKeywords(rules.type.value) : {};
      const mapRules = rules.type.case === "map" ? rules.type.value : undefined;
      const keys = schema.propertyNames;
      const values = schema.additionalProperties;
      if (mapRules?.keys && isObject(keys)) Object.assign(keys, valueKeywords(mapRules.keys, undefined));
      if (mapRules?.values && isObject(values)) {
        Object.assign(values, valueKeywords(mapRules.values, field.mapKind === "enum" ? field.enum : undefined));
      }
      break;
    }
  }
  Object.assign(schema, keywords);
  const notes: string[] = [];
  const cel = [...timeNotes(rules), ...celNotes(rules)];
  if (cel.length > 0) notes.push(`Checked: ${cel.join("; ")}.`);
  if (rules.ignore === Ignore.IF_ZERO_VALUE && (Object.keys(keywords).length > 0 || cel.length > 0)) {
    notes.push(`${zeroValueOf(field)} is accepted too: the rules apply to any other value.`);
  }
  if (notes.length > 0) addDescription(schema, notes.join(" "));
}

function addDescription(schema: JsonObject, note: string): void {
  schema.description = typeof schema.description === "string" ? `${schema.description} ${note}` : note;
}

/** How the zero value of a field shows in JSON, for the note on rules it is exempt from. */
function zeroValueOf(field: DescField): string {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING ? "An empty string" : field.scalar === ScalarType.BOOL ? "`false`" : "Zero";
    case "enum":
      return `\`${field.enum.values[0]?.name ?? "0"}\``;
    case "list":
      return "An empty list";
    case "map":
      return "An empty object";
    case "message":
      return "An absent value";
  }
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
