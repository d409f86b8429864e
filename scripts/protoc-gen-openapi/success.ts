/**
 * The success answer of a REST operation. Unary methods answer the JSON of the response (or of
 * its `response_body` field) with 200, unless the version's `restSuccess` says otherwise: it is
 * asked once with a sample body whose string fields hold `~field_name~`, so that a header it
 * derives from them shows as `/v1/deliveries/{delivery_id}`. Server-streaming methods answer
 * Server-Sent Events whose data is the JSON of one response message each.
 */
import { STATUS_CODES } from "node:http";
import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { EVENT_ID_FIELD } from "../../gateway/rest/conventions.js";
import type { RestSuccess } from "../../gateway/rest/handler.js";
import { fieldByKey } from "../../gateway/rest/json-check.js";
import type { RestRoute } from "../../gateway/rest/routes.js";
import { headerName } from "./header-name.js";
import type { SchemaSet } from "./schemas.js";

export type RestSuccessOf = (methodName: string, body: JsonValue) => RestSuccess | undefined;

/** A sample response JSON whose singular string fields hold `~<proto name>~`. */
function sampleJson(message: DescMessage): JsonObject {
  const sample: JsonObject = {};
  for (const field of message.fields) {
    if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) sample[field.jsonName] = `~${field.name}~`;
  }
  return sample;
}

function responseField(route: RestRoute): DescField | undefined {
  return route.responseBody === "" ? undefined : fieldByKey(route.method.output, route.responseBody);
}

function sampleBody(route: RestRoute): JsonValue {
  const field = responseField(route);
  if (!field) return sampleJson(route.method.output);
  return field.fieldKind === "message" ? sampleJson(field.message) : null;
}

function statusOf(route: RestRoute, successOf: RestSuccessOf | undefined): RestSuccess {
  try {
    return successOf?.(route.method.name, sampleBody(route)) ?? { status: 200 };
  } catch {
    return { status: 200 };
  }
}

/** The schema of the JSON a unary route answers. */
function bodySchema(route: RestRoute, schemas: SchemaSet): JsonObject {
  const field = responseField(route);
  return field ? schemas.field(field) : schemas.ref(route.method.output);
}

function headersOf(success: RestSuccess): JsonObject | undefined {
  const entries = Object.entries(success.headers ?? {});
  if (entries.length === 0) return undefined;
  const headers: JsonObject = {};
  for (const [name, value] of entries) {
    const shown = value.replace(/~([A-Za-z0-9_]+)~/g, "{$1}");
    headers[headerName(name)] = { description: `e.g. \`${shown}\`, with the response's values in place of the field names.`, schema: { type: "string" } };
  }
  return headers;
}

function streamResponse(route: RestRoute, schemas: SchemaSet): JsonObject {
  const output = route.method.output;
  const hasId = output.fields.some((f) => f.name === EVENT_ID_FIELD);
  return {
    description:
      `Server-Sent Events: each event's \`data\` is the JSON of one \`${output.typeName}\`` +
      (hasId ? `, its \`id\` the message's \`${EVENT_ID_FIELD}\`` : "") +
      ". A failure after the first event ends the stream with an `event: error` whose data is an `Error`.",
    content: {
      "text/event-stream": {
        schema: { type: "string", description: "The event stream." },
        "x-event-data": schemas.ref(output),
        "x-event-error": { $ref: "#/components/schemas/Error" },
      },
    },
  };
}

/** The success entries of a route's `responses`. */
export function successResponses(route: RestRoute, successOf: RestSuccessOf | undefined, schemas: SchemaSet): JsonObject {
  if (route.method.methodKind === "server_streaming") return { "200": streamResponse(route, schemas) };
  const success = statusOf(route, successOf);
  const response: JsonObject = {
    description: STATUS_CODES[success.status] ?? "Success",
    content: { "application/json": { schema: bodySchema(route, schemas) } },
  };
  const headers = headersOf(success);
  if (headers) response.headers = headers;
  return { [String(success.status)]: response };
}
