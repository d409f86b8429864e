/**
 * INVALID_ARGUMENT errors of the REST layer, with a google.rpc.BadRequest naming each field by its
 * proto path (e.g. `pickup.latitude`), like the errors of the handlers themselves.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";

export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

export function badRequest(violations: readonly FieldViolation[]): ConnectError {
  const message = `invalid request: ${violations.map((v) => (v.field ? `${v.field}: ${v.description}` : v.description)).join("; ")}`;
  const detail = create(BadRequestSchema, { fieldViolations: violations.map((v) => ({ ...v })) });
  return new ConnectError(message, Code.InvalidArgument, undefined, [{ desc: BadRequestSchema, value: detail }]);
}
