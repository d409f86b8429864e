// Writes the .proto source of a file from its descriptor, for a third-party contract whose npm
// package embeds the compiled descriptor but not the source: @bufbuild/protovalidate ships
// buf/validate/validate.proto only as the descriptor inside its generated code, and the Buf Schema
// Registry, where the source lives, is out of reach. The printed file declares exactly what the
// descriptor holds (the same messages, fields, numbers, options and extensions; comments are not in
// a descriptor), and scripts/vendor-protos.mjs compiles it with buf and compares the result with the
// embedded descriptor before keeping it, so a construct this printer does not know fails the
// install instead of producing a different contract.
//
// It prints what proto2 and proto3 files use: messages (nested too), fields with labels, oneofs,
// proto3 optional, maps, enums, reserved ranges and names, extension ranges, extensions, services,
// and options (known ones and the file's own extensions, written in the text format). Editions and
// groups are refused.
import { clearField, clone, createRegistry, fromBinary, getExtension, hasExtension, isFieldSet, toJson } from "@bufbuild/protobuf";
import { isDeepStrictEqual } from "node:util";
import { reflect } from "@bufbuild/protobuf/reflect";
import { toText } from "@bufbuild/protobuf/txtpb";
import {
  FieldDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  FieldDescriptorProto_Type as Type,
  FileOptionsSchema,
  MessageOptionsSchema,
  FieldOptionsSchema,
  OneofOptionsSchema,
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  ServiceOptionsSchema,
  MethodOptionsSchema,
  ExtensionRangeOptionsSchema,
} from "@bufbuild/protobuf/wkt";

/** The highest field number plus one: `to max` in a range. */
const FIELD_NUMBER_END = 536870912;

const SCALAR_NAMES = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

/** The oneof a field belongs to (its index), or undefined; a proto3 optional's own oneof does not count. */
function oneofOf(field) {
  if (field.proto3Optional || !isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex)) return undefined;
  return field.oneofIndex;
}

/**
 * The .proto source of `file` (a DescFile of @bufbuild/protobuf). `header` is a comment block
 * written first (lines without the leading `//`).
 */
export function protoSourceOf(file, header = []) {
  const proto = file.proto;
  if (proto.syntax === "editions") throw new Error(`${proto.name}: editions are not printed`);
  const syntax = proto.syntax === "proto3" ? "proto3" : "proto2";
  const registry = createRegistry(file, ...file.dependencies);
  const extensions = collectExtensions(file);
  const out = new Writer();
  for (const line of header) out.line(line === "" ? "//" : `// ${line}`);
  out.line(`syntax = "${syntax}";`).blank();
  if (proto.package) out.line(`package ${proto.package};`).blank();
  for (const dep of proto.dependency) out.line(`import "${dep}";`);
  if (proto.dependency.length > 0) out.blank();
  for (const option of optionAssignments(FileOptionsSchema, proto.options, extensions, registry)) out.line(`option ${option};`);
  out.blank();
  const context = { syntax, extensions, registry, prefix: proto.package ? `${proto.package}.` : "" };
  for (const message of proto.messageType) printMessage(out, message, context);
  for (const enumType of proto.enumType) printEnum(out, enumType, context);
  printExtensions(out, proto.extension, context);
  for (const service of proto.service) printService(out, service, context);
  return out.text();
}

class Writer {
  #lines = [];
  #depth = 0;
  line(text) {
    for (const part of text.split("\n")) this.#lines.push(part === "" ? "" : "  ".repeat(this.#depth) + part);
    return this;
  }
  blank() {
    if (this.#lines.length > 0 && this.#lines[this.#lines.length - 1] !== "") this.#lines.push("");
    return this;
  }
  open(text) {
    this.line(`${text} {`);
    this.#depth++;
    return this;
  }
  close() {
    this.#depth--;
    return this.line("}");
  }
  text() {
    while (this.#lines.at(-1) === "") this.#lines.pop();
    return this.#lines.join("\n") + "\n";
  }
}

/** The extensions this file and its dependencies declare, by the options message they extend. */
function collectExtensions(file) {
  const byExtendee = new Map();
  const seen = new Set();
  const visit = (f) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const ext of f.extensions) {
      const list = byExtendee.get(ext.extendee.typeName) ?? [];
      list.push(ext);
      byExtendee.set(ext.extendee.typeName, list);
    }
    for (const dep of f.dependencies) visit(dep);
  };
  visit(file);
  return byExtendee;
}

/** `name = value` for each option set on `options` (a message of `schema`), known fields first. */
function optionAssignments(schema, options, extensions, registry) {
  if (options === undefined) return [];
  const assignments = [];
  const r = reflect(schema, options);
  for (const field of r.fields) {
    if (field.name === "uninterpreted_option" || !r.isSet(field)) continue;
    const value = r.get(field);
    if (field.fieldKind === "list") {
      for (const item of value) assignments.push(`${field.name} = ${literal(field.listKind, field, item, registry)}`);
    } else {
      assignments.push(`${field.name} = ${literal(field.fieldKind, field, field.fieldKind === "message" ? options[field.localName] : value, registry)}`);
    }
  }
  for (const ext of extensions.get(schema.typeName) ?? []) {
    if (!hasExtension(options, ext)) continue;
    const value = getExtension(options, ext);
    const name = `(${ext.typeName})`;
    if (ext.fieldKind === "list") {
      for (const item of value) assignments.push(`${name} = ${literal(ext.listKind, ext, item, registry)}`);
    } else {
      assignments.push(`${name} = ${literal(ext.fieldKind, ext, value, registry)}`);
    }
  }
  return assignments;
}

/** A value in option syntax: a scalar literal, an enum value's name or a text-format message. */
function literal(kind, field, value, registry) {
  switch (kind) {
    case "message": {
      const text = toText(field.message, value, { registry }).trim();
      return text === "" ? "{}" : `{\n${text.replace(/^/gm, "  ")}\n}`;
    }
    case "enum":
      return field.enum.values.find((v) => v.number === value)?.name ?? String(value);
    default:
      if (typeof value === "string") return quote(value);
      if (value instanceof Uint8Array) return quote(Buffer.from(value).toString("latin1"));
      return String(value);
  }
}

/** A string literal of the protobuf language: C escapes, UTF-8 text kept. */
function quote(text) {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0);
    if (char === '"') out += '\\"';
    else if (char === "\\") out += "\\\\";
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\" + code.toString(8).padStart(3, "0");
    else out += char;
  }
  return out + '"';
}

/** Options in brackets after a field or enum value, one per line when there are several. */
function bracketed(assignments) {
  if (assignments.length === 0) return "";
  if (assignments.length === 1 && !assignments[0].includes("\n")) return ` [${assignments[0]}]`;
  return ` [\n${assignments.map((a) => a.replace(/^/gm, "  ")).join(",\n")}\n]`;
}

function printMessage(out, message, context) {
  out.open(`message ${message.name}`);
  for (const option of optionAssignments(MessageOptionsSchema, message.options, context.extensions, context.registry)) out.line(`option ${option};`);
  const entries = new Map(message.nestedType.filter((n) => n.options?.mapEntry).map((n) => [n.name, n]));
  for (const range of message.reservedRange) out.line(`reserved ${rangeText(range)};`);
  if (message.reservedName.length > 0) out.line(`reserved ${message.reservedName.map(quote).join(", ")};`);
  for (const range of message.extensionRange) {
    const options = optionAssignments(ExtensionRangeOptionsSchema, range.options, context.extensions, context.registry);
    out.line(`extensions ${rangeText(range)}${bracketed(options)};`);
  }
  const oneofFields = new Map();
  for (const field of message.field) {
    const index = oneofOf(field);
    if (index !== undefined) oneofFields.set(index, [...(oneofFields.get(index) ?? []), field]);
  }
  // Fields are printed in their order, a oneof as a block where its first field is. A map field
  // declares its entry type where it stands, so nested messages are interleaved with the fields
  // to keep the order of the nested types.
  const printedOneofs = new Set();
  let next = 0;
  const printFieldsThrough = (last) => {
    for (; next <= last; next++) {
      const field = message.field[next];
      const index = oneofOf(field);
      if (index === undefined) {
        printField(out, field, context, entries, true);
      } else if (!printedOneofs.has(index)) {
        printedOneofs.add(index);
        const oneof = message.oneofDecl[index];
        out.open(`oneof ${oneof.name}`);
        for (const option of optionAssignments(OneofOptionsSchema, oneof.options, context.extensions, context.registry)) out.line(`option ${option};`);
        for (const member of oneofFields.get(index)) printField(out, member, context, entries, false);
        out.close();
      }
    }
  };
  for (const enumType of message.enumType) printEnum(out, enumType, context);
  for (const nested of message.nestedType) {
    if (entries.has(nested.name)) {
      const typeName = `.${context.prefix}${message.name}.${nested.name}`;
      printFieldsThrough(message.field.findIndex((f) => f.typeName === typeName));
    } else {
      printMessage(out, nested, { ...context, prefix: `${context.prefix}${message.name}.` });
    }
  }
  printFieldsThrough(message.field.length - 1);
  printExtensions(out, message.extension, context);
  out.close().blank();
}

function printField(out, field, context, mapEntries, withLabel) {
  if (field.type === Type.GROUP) throw new Error(`field ${field.name}: groups are not printed`);
  const entry = field.type === Type.MESSAGE ? mapEntries.get(field.typeName.split(".").pop()) : undefined;
  let declaration;
  if (entry !== undefined && field.label === Label.REPEATED) {
    const [key, value] = entry.field;
    declaration = `map<${typeText(key)}, ${typeText(value)}> ${field.name} = ${field.number}`;
  } else {
    const label = !withLabel ? "" : labelText(field, context.syntax);
    declaration = `${label}${typeText(field)} ${field.name} = ${field.number}`;
  }
  const options = [];
  if (isFieldSet(field, FieldDescriptorProtoSchema.field.defaultValue)) options.push(`default = ${defaultText(field)}`);
  if (isFieldSet(field, FieldDescriptorProtoSchema.field.jsonName) && field.jsonName !== camelCase(field.name)) options.push(`json_name = ${quote(field.jsonName)}`);
  options.push(...optionAssignments(FieldOptionsSchema, field.options, context.extensions, context.registry));
  out.line(`${declaration}${bracketed(options)};`);
}

function labelText(field, syntax) {
  if (field.label === Label.REPEATED) return "repeated ";
  if (field.label === Label.REQUIRED) return "required ";
  if (syntax === "proto2" || field.proto3Optional) return "optional ";
  return "";
}

function typeText(field) {
  if (field.type === Type.MESSAGE || field.type === Type.ENUM) return field.typeName;
  const name = SCALAR_NAMES[field.type];
  if (name === undefined) throw new Error(`field ${field.name}: unknown type ${field.type}`);
  return name;
}

function defaultText(field) {
  switch (field.type) {
    case Type.STRING:
    case Type.BYTES:
      return quote(field.defaultValue);
    default:
      return field.defaultValue;
  }
}

function camelCase(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function rangeText(range) {
  const last = range.end - 1;
  if (range.end >= FIELD_NUMBER_END) return `${range.start} to max`;
  return last === range.start ? String(range.start) : `${range.start} to ${last}`;
}

function printEnum(out, enumType, context) {
  out.open(`enum ${enumType.name}`);
  for (const option of optionAssignments(EnumOptionsSchema, enumType.options, context.extensions, context.registry)) out.line(`option ${option};`);
  for (const range of enumType.reservedRange) out.line(`reserved ${range.start === range.end ? range.start : `${range.start} to ${range.end}`};`);
  if (enumType.reservedName.length > 0) out.line(`reserved ${enumType.reservedName.map(quote).join(", ")};`);
  for (const value of enumType.value) {
    const options = optionAssignments(EnumValueOptionsSchema, value.options, context.extensions, context.registry);
    out.line(`${value.name} = ${value.number}${bracketed(options)};`);
  }
  out.close().blank();
}

function printExtensions(out, extensions, context) {
  const byExtendee = new Map();
  for (const ext of extensions) {
    const list = byExtendee.get(ext.extendee) ?? [];
    list.push(ext);
    byExtendee.set(ext.extendee, list);
  }
  for (const [extendee, list] of byExtendee) {
    out.open(`extend ${extendee}`);
    for (const ext of list) printField(out, ext, context, new Map(), true);
    out.close().blank();
  }
}

function printService(out, service, context) {
  out.open(`service ${service.name}`);
  for (const option of optionAssignments(ServiceOptionsSchema, service.options, context.extensions, context.registry)) out.line(`option ${option};`);
  for (const method of service.method) {
    const input = `${method.clientStreaming ? "stream " : ""}${method.inputType}`;
    const output = `${method.serverStreaming ? "stream " : ""}${method.outputType}`;
    const options = optionAssignments(MethodOptionsSchema, method.options, context.extensions, context.registry);
    if (options.length === 0) out.line(`rpc ${method.name}(${input}) returns (${output});`);
    else {
      out.open(`rpc ${method.name}(${input}) returns (${output})`);
      for (const option of options) out.line(`option ${option};`);
      out.close();
    }
  }
  out.close().blank();
}

/**
 * Why the compiled form of a printed file (a FileDescriptorSet image from `buf build`, holding
 * `file.name`) differs from `file`'s own descriptor, or undefined when they declare the same thing.
 * Compilers fill in every field's default json_name, which descriptors embedded by protoc-gen-es
 * leave out, so default json_names are not compared; options are compared by value.
 */
export function compiledDifference(file, imageBytes) {
  const image = fromBinary(FileDescriptorSetSchema, imageBytes);
  const compiled = image.file.find((f) => f.name === file.proto.name);
  if (compiled === undefined) return `${file.proto.name} is not in the compiled image`;
  const registry = createRegistry(file, ...file.dependencies);
  const normal = (proto) => toJson(FileDescriptorProtoSchema, withoutDefaultJsonNames(clone(FileDescriptorProtoSchema, proto)), { registry });
  const expected = normal(file.proto);
  const actual = normal(compiled);
  if (isDeepStrictEqual(expected, actual)) return undefined;
  const want = JSON.stringify(expected, null, 1).split("\n");
  const got = JSON.stringify(actual, null, 1).split("\n");
  const at = want.findIndex((line, i) => line !== got[i]);
  return `the compiled file differs from the descriptor near:\n  expected ${want.slice(at, at + 3).join(" ")}\n  compiled ${got.slice(at, at + 3).join(" ")}`;
}

function withoutDefaultJsonNames(proto) {
  const clearDefault = (field) => {
    if (isFieldSet(field, FieldDescriptorProtoSchema.field.jsonName) && field.jsonName === camelCase(field.name)) {
      clearField(field, FieldDescriptorProtoSchema.field.jsonName);
    }
  };
  const visit = (message) => {
    message.field.forEach(clearDefault);
    message.extension.forEach(clearDefault);
    message.nestedType.forEach(visit);
  };
  proto.messageType.forEach(visit);
  proto.extension.forEach(clearDefault);
  return proto;
}
