/**
 * The parameters of a REST operation: its path variables (typed by the request field each
 * binds), the request fields neither the path nor the body carries as query parameters (nested
 * fields by dotted JSON names, repeated fields as repeated keys), and the headers the gateway
 * reads: `Last-Event-ID` for resumable streams, `Idempotency-Key` for requests with an
 * `idempotency_key` field, and `Connect-Timeout-Ms` for every call.
 */
import type { DescField, DescMessage, JsonObject } from "@bufbuild/protobuf";
import { IDEMPOTENCY_KEY_FIELD, IDEMPOTENCY_KEY_HEADER, RESUME_FIELD } from "../../gateway/rest/conventions.js";
import { fieldByKey } from "../../gateway/rest/json-check.js";
import type { RestRoute } from "../../gateway/rest/routes.js";
import { isOutputOnly, isRequired } from "./field-behavior.js";
import { headerName } from "./header-name.js";
import type { OpenApiPathParts } from "./path-names.js";
import type { SchemaSet } from "./schemas.js";
import { hasTextForm, isWellKnown } from "./well-known.js";

/** Reusable parameters, referenced from every operation. */
export const SHARED_PARAMETERS: Readonly<Record<string, JsonObject>> = {
  ConnectTimeoutMs: {
    name: "Connect-Timeout-Ms",
    in: "header",
    required: false,
    description: "The caller's timeout in milliseconds; the gateway's internal calls end with it.",
    schema: { type: "integer", minimum: 0, maximum: 9999999999 },
  },
};

/** The fields along `path` (proto or JSON names) from `message`, or undefined when one is missing. */
function fieldsAlong(message: DescMessage, path: readonly string[]): DescField[] | undefined {
  const fields: DescField[] = [];
  let type: DescMessage | undefined = message;
  for (const key of path) {
    const field: DescField | undefined = type ? fieldByKey(type, key) : undefined;
    if (!field) return undefined;
    fields.push(field);
    type = field.fieldKind === "message" ? field.message : undefined;
  }
  return fields;
}

/** The proto paths (`a.b`) of the request fields the path variables bind. */
export function pathBoundFields(route: RestRoute): Set<string> {
  const bound = new Set<string>();
  for (const variable of route.template.variables) {
    const fields = fieldsAlong(route.method.input, variable);
    bound.add(fields ? fields.map((f) => f.name).join(".") : variable.join("."));
  }
  return bound;
}

export function pathParameters(route: RestRoute, parts: OpenApiPathParts, schemas: SchemaSet): JsonObject[] {
  const parameters = route.template.variables.map((variable): JsonObject => {
    const name = variable.join(".");
    const field = fieldsAlong(route.method.input, variable)?.at(-1);
    const sub = parts.subTemplates.get(name);
    const description = `The request's \`${name}\`${sub === undefined ? "" : `, matching \`${sub}\` (slashes sent as they are)`}.`;
    return { name, in: "path", required: true, description, schema: field ? schemas.field(field) : { type: "string" } };
  });
  for (const wildcard of parts.wildcards) {
    parameters.push({
      name: wildcard.name,
      in: "path",
      required: true,
      description: wildcard.segment === "*" ? "Any one path segment." : "Any rest of the path.",
      schema: { type: "string" },
    });
  }
  return parameters;
}

/** Fields a URL can set: values, repeated values, and well-known types whose JSON form is text. */
function isUrlValue(field: DescField): boolean {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return true;
    case "list":
      return field.listKind !== "message" || hasTextForm(field.message.typeName);
    case "message":
      return hasTextForm(field.message.typeName);
    case "map":
      return false;
  }
}

export function queryParameters(route: RestRoute, schemas: SchemaSet): JsonObject[] {
  if (route.body === "*") return [];
  const skip = pathBoundFields(route);
  if (route.body !== "") skip.add(route.body);
  const parameters: JsonObject[] = [];

  const visit = (message: DescMessage, jsonPath: string[], protoPath: string[], required: boolean, within: Set<string>) => {
    for (const field of message.fields) {
      const proto = [...protoPath, field.name];
      if (skip.has(proto.join(".")) || isOutputOnly(field)) continue;
      const json = [...jsonPath, field.jsonName];
      const fieldRequired = required && isRequired(field);
      if (isUrlValue(field)) {
        const parameter: JsonObject = { name: json.join("."), in: "query", schema: schemas.field(field) };
        if (fieldRequired) parameter.required = true;
        parameters.push(parameter);
      } else if (field.fieldKind === "message" && !isWellKnown(field.message.typeName) && !within.has(field.message.typeName)) {
        visit(field.message, json, proto, fieldRequired, new Set([...within, field.message.typeName]));
      }
    }
  };
  visit(route.method.input, [], [], true, new Set([route.method.input.typeName]));
  return parameters;
}

export function headerParameters(route: RestRoute): JsonObject[] {
  const input = route.method.input;
  const parameters: JsonObject[] = [];
  if (route.method.methodKind === "server_streaming" && input.fields.some((f) => f.name === RESUME_FIELD)) {
    parameters.push({
      name: "Last-Event-ID",
      in: "header",
      required: false,
      description: `The \`id\` of the last event received; resumes the stream after it (as \`${RESUME_FIELD}\`, unless the query sets that).`,
      schema: { type: "string" },
    });
  }
  if (input.fields.some((f) => f.name === IDEMPOTENCY_KEY_FIELD)) {
    parameters.push({
      name: headerName(IDEMPOTENCY_KEY_HEADER),
      in: "header",
      required: false,
      description: `Takes the place of the \`${IDEMPOTENCY_KEY_FIELD}\` field: the same key yields the same result.`,
      schema: { type: "string" },
    });
  }
  parameters.push({ $ref: "#/components/parameters/ConnectTimeoutMs" });
  return parameters;
}
