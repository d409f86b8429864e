/**
 * REST errors: `{ "code": "<connect code name>", "message": ..., "details": [...] }` with the
 * Connect protocol's HTTP status for the code. The google.rpc details a client can act on are
 * written as their JSON with a `type` naming them, e.g.
 * `{ "type": "google.rpc.BadRequest", "fieldViolations": [{ "field": "pickup.latitude", ... }] }`.
 */
import { toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DETAIL_TYPES } from "./conventions.js";
import { codeName, httpStatusOf } from "./http-status.js";
import { isKeyReused } from "../idempotency.js";
import { isPayloadTooLarge } from "./request-io.js";

export { DETAIL_TYPES };

export interface ErrorResponse {
  readonly status: number;
  readonly body: JsonObject;
}

function detailsJson(error: ConnectError): JsonValue[] {
  const details: JsonValue[] = [];
  for (const desc of DETAIL_TYPES) {
    for (const detail of error.findDetails(desc)) {
      details.push({ type: desc.typeName, ...(toJson(desc, detail) as JsonObject) });
    }
  }
  return details;
}

/** The error response for anything a REST call threw; unexpected failures are `internal`. */
export function errorResponse(thrown: unknown): ErrorResponse {
  const error =
    thrown instanceof ConnectError
      ? thrown
      : new ConnectError("internal error", Code.Internal, undefined, undefined, thrown);
  const body: JsonObject = { code: codeName(error.code), message: error.rawMessage };
  const details = detailsJson(error);
  if (details.length > 0) body.details = details;
  // Two refusals have a REST status of their own: a body too large (413) and an idempotency key
  // reused with a different request (422 Unprocessable Content).
  const status = isPayloadTooLarge(error) ? 413 : isKeyReused(error) ? 422 : httpStatusOf(error.code);
  return { status, body };
}
