/**
 * The field rules the contracts declare (`buf.validate` options on the .proto files), checked from
 * the descriptors with @bufbuild/protovalidate. One validator serves the whole process: it plans
 * each message type once, on first use, and keeps the plan.
 *
 * Each violation names its field by its proto path, as a google.rpc.BadRequest does
 * (`pickup.latitude`, `packages[1].weight_kg`), with the rule's message as its description. A
 * message-level rule (a CEL expression over several fields) has no field of its own: its id names
 * the field it is about, e.g. `pickup_time.not_after_deadline` is reported on `pickup_time`.
 *
 * Timestamps are also checked to be what google.protobuf.Timestamp allows (0001-01-01 to
 * 9999-12-31, nanos 0 to 999,999,999), as a JSON request already is when it is decoded.
 */
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { pathToString, type Path } from "@bufbuild/protobuf/reflect";
import { createValidator, type Validator, type Violation } from "@bufbuild/protovalidate";
import { invalidArgument, type FieldViolation } from "../grpc/errors.js";

let shared: Validator | undefined;

/** The process's validator (created on first use). */
function validator(): Validator {
  shared ??= createValidator();
  return shared;
}

/** The message type at the end of `path` from `root` (the root itself for an empty path). */
function messageAt(root: DescMessage, path: Path): DescMessage | undefined {
  let current: DescMessage | undefined = root;
  for (const element of path) {
    if (element.kind !== "field") continue;
    current = element.message;
  }
  return current;
}

/** The longest run of field names at the start of `ruleId` that is a field path of `message`. */
function fieldNamedBy(message: DescMessage | undefined, ruleId: string): string {
  const names: string[] = [];
  let current = message;
  for (const segment of ruleId.split(".")) {
    const field: DescField | undefined = current?.fields.find((f) => f.name === segment);
    if (!field) break;
    names.push(segment);
    current = field.message;
  }
  return names.join(".");
}

/** The field a violation is reported on. */
function fieldOf(root: DescMessage, violation: Violation): string {
  const at = pathToString(violation.field);
  const last = violation.field[violation.field.length - 1];
  // Field rules have a rule path; a oneof's `required` ends at the oneof.
  if (violation.rule.length > 0 || last?.kind === "oneof") return at;
  const named = fieldNamedBy(messageAt(root, violation.field), violation.ruleId);
  if (named === "") return at;
  return at === "" ? named : `${at}.${named}`;
}

const MIN_SECONDS = -62_135_596_800n; // 0001-01-01T00:00:00Z
const MAX_SECONDS = 253_402_300_799n; // 9999-12-31T23:59:59Z
const TIMESTAMP = "google.protobuf.Timestamp";

/** The fields of each message type through which a Timestamp can be reached, found once. */
const timestampPaths = new Map<DescMessage, readonly DescField[]>();

function fieldsReachingTimestamps(desc: DescMessage, visiting = new Set<DescMessage>()): readonly DescField[] {
  const known = timestampPaths.get(desc);
  if (known) return known;
  if (visiting.has(desc)) return [];
  visiting.add(desc);
  const fields = desc.fields.filter((f) => {
    const message = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") ? f.message : undefined;
    // Well-known types other than Timestamp hold none (and Struct would recurse).
    if (!message || (message.typeName.startsWith("google.protobuf.") && message.typeName !== TIMESTAMP)) return false;
    return message.typeName === TIMESTAMP || fieldsReachingTimestamps(message, visiting).length > 0;
  });
  visiting.delete(desc);
  timestampPaths.set(desc, fields);
  return fields;
}

function timestampViolations(desc: DescMessage, message: Message, prefix: string, out: FieldViolation[]): void {
  for (const field of fieldsReachingTimestamps(desc)) {
    const value = (message as unknown as Record<string, unknown>)[field.localName];
    const items = field.fieldKind === "list" ? (value as Message[]) : value === undefined ? [] : [value as Message];
    items.forEach((item, i) => {
      const path = `${prefix}${field.name}${field.fieldKind === "list" ? `[${i}]` : ""}`;
      const inner = field.message as DescMessage;
      if (inner.typeName !== TIMESTAMP) {
        timestampViolations(inner, item, `${path}.`, out);
        return;
      }
      const { seconds, nanos } = item as unknown as { seconds: bigint; nanos: number };
      if (seconds < MIN_SECONDS || seconds > MAX_SECONDS || nanos < 0 || nanos > 999_999_999) {
        out.push({ field: path, description: "is not a valid timestamp" });
      }
    });
  }
}

/** Every violation of the contract's rules by `message`, a message of type `schema`; [] when it keeps them. */
export function ruleViolations(schema: DescMessage, message: Message): FieldViolation[] {
  const malformed: FieldViolation[] = [];
  timestampViolations(schema, message, "", malformed);
  const result = validator().validate(schema, message as never);
  switch (result.kind) {
    case "valid":
      return malformed;
    case "invalid": {
      // A malformed time is reported once, as such, not again by the rules comparing it.
      const reported = new Set(malformed.map((v) => v.field));
      const broken = result.violations.map((v) => ({ field: fieldOf(schema, v), description: v.message }));
      return [...malformed, ...broken.filter((v) => !reported.has(v.field))];
    }
    case "error":
      // A rule the contract declares that cannot be compiled is the platform's fault (INTERNAL);
      // one that fails on this request's values is the request's.
      if (result.error.name === "CompilationError") throw result.error;
      if (malformed.length > 0) return malformed;
      return [{ field: "", description: `the request could not be checked: ${result.error.message}` }];
  }
}

/** Throws INVALID_ARGUMENT (google.rpc.BadRequest) naming every field of `message` that breaks a rule. */
export function refuseRuleViolations(schema: DescMessage, message: Message): void {
  const violations = ruleViolations(schema, message);
  if (violations.length > 0) throw invalidArgument(violations);
}
