/**
 * Transcoding between REST and the service's messages. The request is built from the body
 * (`body: "*"` the whole message, `body: "field"` that field), the query parameters for the
 * fields neither binds (repeated keys and nested `a.b=x` names allowed), and the path variables,
 * which win over both; it is decoded strictly (unknown fields and wrong types are
 * INVALID_ARGUMENT naming each field), then checked against the field rules of its contract. The
 * response is the JSON of the response message or of its `response_body` field.
 */
import {
  create,
  fromJson,
  toJson,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { badRequest, type FieldViolation } from "./bad-request.js";
import { setFieldValue } from "./field-values.js";
import { fieldByKey, jsonViolations } from "./json-check.js";
import type { RestRoute } from "./routes.js";
import { refuseInvalidRequest } from "../request-rules.js";

export interface RestInput {
  /** Bound path variables by field path (`a.b`). */
  readonly variables: ReadonlyMap<string, string>;
  readonly query: URLSearchParams;
  /** The parsed JSON body, or undefined when the request had none. */
  readonly body: JsonValue | undefined;
}

function bodyJson(route: RestRoute, body: JsonValue | undefined, violations: FieldViolation[]): JsonObject {
  if (route.body === "" || body === undefined) return {};
  if (route.body === "*") {
    if (typeof body === "object" && body !== null && !Array.isArray(body)) return { ...body };
    violations.push({ field: "", description: "the body must be a JSON object" });
    return {};
  }
  const field = fieldByKey(route.method.input, route.body);
  return field ? { [field.jsonName]: body } : {};
}

function queryJson(route: RestRoute, input: RestInput, target: JsonObject, violations: FieldViolation[]): void {
  if (route.body === "*") {
    if ([...input.query.keys()].length > 0) {
      violations.push({ field: "", description: "query parameters are not accepted: the body carries the request" });
    }
    return;
  }
  for (const key of new Set(input.query.keys())) {
    const path = key.split(".");
    if (route.body !== "" && fieldByKey(route.method.input, path[0] ?? "")?.name === route.body) {
      violations.push({ field: key, description: "is carried by the body" });
      continue;
    }
    const problem = setFieldValue(target, route.method.input, path, input.query.getAll(key));
    if (problem) violations.push(problem);
  }
}

/** The request message of `route` built from `input`; INVALID_ARGUMENT when it does not decode. */
export function buildRequest(route: RestRoute, input: RestInput): Message {
  const violations: FieldViolation[] = [];
  const json = bodyJson(route, input.body, violations);
  queryJson(route, input, json, violations);
  for (const [fieldPath, value] of input.variables) {
    const problem = setFieldValue(json, route.method.input, fieldPath.split("."), [value]);
    if (problem) violations.push(problem);
  }
  violations.push(...jsonViolations(route.method.input, json));
  if (violations.length > 0) throw badRequest(violations);
  let request: Message;
  try {
    request = fromJson(route.method.input, json, { ignoreUnknownFields: false });
  } catch (error) {
    throw badRequest([{ field: "", description: error instanceof Error ? error.message : String(error) }]);
  }
  // The field rules of the contract, as the Connect router checks them (../request-rules.ts).
  refuseInvalidRequest(route.method.input, request);
  return request;
}

/** The response message of `route` from what a handler returned. */
export function responseMessage(route: RestRoute, answer: unknown): Message {
  const output: DescMessage = route.method.output;
  return create(output, answer as never);
}

/** The JSON sent for a response message: the whole of it, or its `response_body` field. */
export function responseJson(route: RestRoute, message: Message): JsonValue {
  const json = toJson(route.method.output, message as never) as JsonObject;
  if (route.responseBody === "") return json;
  const field = fieldByKey(route.method.output, route.responseBody);
  if (!field) return json;
  const value = json[field.jsonName];
  if (value !== undefined) return value;
  return field.fieldKind === "message" ? {} : field.fieldKind === "list" ? [] : null;
}
