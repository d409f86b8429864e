/**
 * The REST error answers as OpenAPI components: the `Error` body
 * (`{ code, message, details }`, see gateway/rest/error-body.ts), its typed `details`, and the shared
 * responses every operation refers to (400, 401 and the default for any other status).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { DETAIL_TYPES } from "../../gateway/rest/conventions.js";
import { codeName } from "../../gateway/rest/http-status.js";
import { SCHEMA_REF_PREFIX, type SchemaSet } from "./schemas.js";

const JSON_TYPE = "application/json";

function errorContent(): JsonObject {
  return { [JSON_TYPE]: { schema: { $ref: `${SCHEMA_REF_PREFIX}Error` } } };
}

/** The names of every Connect code, e.g. `invalid_argument`. */
function codeNames(): string[] {
  return Object.values(Code)
    .filter((value): value is Code => typeof value === "number")
    .map(codeName);
}

export function errorSchemas(schemas: SchemaSet): Record<string, JsonObject> {
  return {
    Error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", enum: codeNames(), description: "The Connect code; the HTTP status follows from it." },
        message: { type: "string" },
        details: { type: "array", items: { $ref: `${SCHEMA_REF_PREFIX}ErrorDetail` } },
      },
    },
    ErrorDetail: {
      description: "A google.rpc detail as its JSON, with `type` naming it.",
      oneOf: DETAIL_TYPES.map((desc) => ({
        allOf: [
          { type: "object", required: ["type"], properties: { type: { const: desc.typeName } } },
          schemas.ref(desc),
        ],
      })),
    },
  };
}

export const ERROR_RESPONSES: Readonly<Record<string, JsonObject>> = {
  BadRequest: {
    description:
      "The request is invalid (`invalid_argument`, `failed_precondition` or `out_of_range`); a `google.rpc.BadRequest` detail names each field at fault.",
    content: errorContent(),
  },
  Unauthenticated: {
    description: "The bearer token is missing, malformed, forged or expired (`unauthenticated`).",
    content: errorContent(),
  },
  Error: {
    description: "An error: `code` names it and the HTTP status follows from it.",
    content: errorContent(),
  },
};

/** The error entries of every operation's `responses`. */
export function errorResponseRefs(): JsonObject {
  return {
    "400": { $ref: "#/components/responses/BadRequest" },
    "401": { $ref: "#/components/responses/Unauthenticated" },
    default: { $ref: "#/components/responses/Error" },
  };
}
