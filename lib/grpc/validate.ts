// Checks that a value can become a message of a given type before it is encoded.
//
// `create()` from @bufbuild/protobuf trusts its input: a string in a bool field, a message of
// another type or a Date in a Timestamp field are silently coerced or dropped, so a handler's
// mistake would reach the wire as a wrong but well-formed message. This walk rejects such values
// with a reason that names the offending field path.

import { ScalarType, type DescEnum, type DescField, type DescMessage, type DescOneof } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const DECIMAL_INTEGER = /^-?[0-9]+$/;

/**
 * Returns why `value` cannot be used as (or to initialise) a message of type `desc`, or undefined
 * when it can. Accepts both built messages and plain init objects.
 */
export function messageInitProblem(desc: DescMessage, value: unknown): string | undefined {
  return checkMessage(desc, value, "", new Set());
}

function checkMessage(desc: DescMessage, value: unknown, path: string, ancestors: Set<object>): string | undefined {
  const typeName = isObjectLike(value) ? (value as { $typeName?: unknown }).$typeName : undefined;
  if (!isObjectLike(value) || (typeName !== undefined && typeName !== desc.typeName)) {
    // At the root the caller already names the expected type.
    return path === "" ? `got ${describe(value)}` : at(path, `expected a ${desc.typeName} message, got ${describe(value)}`);
  }
  if (ancestors.has(value)) {
    return at(path, "the value refers to itself (cyclic reference)");
  }
  ancestors.add(value);
  try {
    const record = value as Record<string, unknown>;
    for (const member of desc.members) {
      const problem =
        member.kind === "oneof"
          ? checkOneof(member, record[member.localName], join(path, member.localName), ancestors)
          : checkField(member, record[member.localName], join(path, member.localName), ancestors);
      if (problem !== undefined) {
        return problem;
      }
    }
    return undefined;
  } finally {
    ancestors.delete(value);
  }
}

function checkOneof(oneof: DescOneof, value: unknown, path: string, ancestors: Set<object>): string | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  if (!isObjectLike(value)) {
    return at(path, `expected a oneof object { case, value }, got ${describe(value)}`);
  }
  const { case: selected, value: selectedValue } = value as { case?: unknown; value?: unknown };
  if (selected === undefined || selected === null) {
    return undefined;
  }
  const field = oneof.fields.find((f) => f.localName === selected);
  if (field === undefined) {
    const cases = oneof.fields.map((f) => `"${f.localName}"`).join(", ");
    return at(path, `unknown case ${describe(selected)}; expected one of ${cases}`);
  }
  const casePath = join(path, field.localName);
  if (selectedValue === undefined || selectedValue === null) {
    return at(casePath, `case is set but its value is ${describe(selectedValue)}`);
  }
  switch (field.fieldKind) {
    case "scalar":
      return checkScalar(field.scalar, selectedValue, casePath);
    case "enum":
      return checkEnum(field.enum, selectedValue, casePath);
    case "message":
      return checkMessageValue(field, field.message, selectedValue, casePath, ancestors);
  }
}

function checkField(field: DescField, value: unknown, path: string, ancestors: Set<object>): string | undefined {
  if (value === undefined || value === null) {
    return undefined; // unset
  }
  switch (field.fieldKind) {
    case "scalar":
      return checkScalar(field.scalar, value, path);
    case "enum":
      return checkEnum(field.enum, value, path);
    case "message":
      return checkMessageValue(field, field.message, value, path, ancestors);
    case "list": {
      if (!Array.isArray(value)) {
        return at(path, `expected an array, got ${describe(value)}`);
      }
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        const itemPath = `${path}[${i}]`;
        const problem =
          field.listKind === "scalar"
            ? checkScalar(field.scalar, item, itemPath)
            : field.listKind === "enum"
              ? checkEnum(field.enum, item, itemPath)
              : checkMessageValue(field, field.message, item, itemPath, ancestors);
        if (problem !== undefined) {
          return problem;
        }
      }
      return undefined;
    }
    case "map": {
      if (!isPlainObject(value)) {
        return at(path, `expected an object (map), got ${describe(value)}`);
      }
      for (const [key, item] of Object.entries(value)) {
        const itemPath = `${path}[${JSON.stringify(key)}]`;
        const problem =
          field.mapKind === "scalar"
            ? checkScalar(field.scalar, item, itemPath)
            : field.mapKind === "enum"
              ? checkEnum(field.enum, item, itemPath)
              : checkMessageValue(field, field.message, item, itemPath, ancestors);
        if (problem !== undefined) {
          return problem;
        }
      }
      return undefined;
    }
  }
}

/**
 * A message-typed value, in the local representation protobuf-es uses for the field: a JSON
 * object for google.protobuf.Struct (except inside google.protobuf.Value), the bare scalar for a
 * singular wrapper field outside a oneof, the message (or its init object) otherwise.
 */
function checkMessageValue(
  field: DescField,
  message: DescMessage,
  value: unknown,
  path: string,
  ancestors: Set<object>,
): string | undefined {
  if (message.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") {
    return isPlainObject(value) ? undefined : at(path, `expected a JSON object, got ${describe(value)}`);
  }
  if (field.fieldKind === "message" && field.oneof === undefined && isWrapperDesc(message)) {
    const inner = message.fields[0];
    return inner === undefined ? undefined : checkScalar(inner.scalar, value, path);
  }
  return checkMessage(message, value, path, ancestors);
}

function checkEnum(desc: DescEnum, value: unknown, path: string): string | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) {
    return undefined;
  }
  return at(path, `expected a ${desc.typeName} value (an integer), got ${describe(value)}`);
}

function checkScalar(type: ScalarType, value: unknown, path: string): string | undefined {
  const ok = scalarOk(type, value);
  return ok ? undefined : at(path, `expected ${scalarName(type)}, got ${describe(value)}`);
}

function scalarOk(type: ScalarType, value: unknown): boolean {
  switch (type) {
    case ScalarType.STRING:
      return typeof value === "string";
    case ScalarType.BOOL:
      return typeof value === "boolean";
    case ScalarType.BYTES:
      return (
        value instanceof Uint8Array ||
        (Array.isArray(value) && value.every((b) => typeof b === "number" && Number.isInteger(b) && b >= 0 && b <= 255))
      );
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return typeof value === "number";
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return typeof value === "number" && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= UINT32_MAX;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return inRange(toBigInt(value), INT64_MIN, INT64_MAX);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return inRange(toBigInt(value), 0n, UINT64_MAX);
  }
}

function toBigInt(value: unknown): bigint | undefined {
  if (typeof value === "bigint") {
    return value;
  }
  if (typeof value === "number" && Number.isSafeInteger(value)) {
    return BigInt(value);
  }
  if (typeof value === "string" && DECIMAL_INTEGER.test(value)) {
    return BigInt(value);
  }
  return undefined;
}

function inRange(value: bigint | undefined, min: bigint, max: bigint): boolean {
  return value !== undefined && value >= min && value <= max;
}

function scalarName(type: ScalarType): string {
  switch (type) {
    case ScalarType.STRING:
      return "a string";
    case ScalarType.BOOL:
      return "a boolean";
    case ScalarType.BYTES:
      return "bytes (a Uint8Array)";
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return "a number";
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return "a 32-bit integer";
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return "an unsigned 32-bit integer";
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return "a 64-bit integer (bigint)";
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return "an unsigned 64-bit integer (bigint)";
  }
}

/** Objects that may hold message fields: not arrays and not well-known non-message built-ins. */
function isObjectLike(value: unknown): value is object {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Date) &&
    !ArrayBuffer.isView(value) &&
    !(value instanceof Map) &&
    !(value instanceof Set) &&
    !(value instanceof RegExp) &&
    !(value instanceof Promise)
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A short, safe description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === undefined) {
    return "undefined";
  }
  if (value === null) {
    return "null";
  }
  switch (typeof value) {
    case "string":
      return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
    case "number":
      return `number ${String(value)}`;
    case "bigint":
      return `bigint ${String(value)}`;
    case "boolean":
      return `boolean ${String(value)}`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
  }
  if (Array.isArray(value)) {
    return "an array";
  }
  if (value instanceof Date) {
    return "a Date";
  }
  if (value instanceof Promise) {
    return "a Promise";
  }
  if (ArrayBuffer.isView(value)) {
    return "binary data";
  }
  const typeName = (value as { $typeName?: unknown }).$typeName;
  if (typeof typeName === "string") {
    return `a ${typeName} message`;
  }
  return "an object";
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

function at(path: string, problem: string): string {
  return path === "" ? problem : `field ${path}: ${problem}`;
}
