/**
 * Re-raising internal errors to public callers: an internal RpcError becomes a fresh ConnectError
 * with the same code (gRPC and Connect codes share their numbers) and message. Of its details only
 * the google.rpc messages a client can act on are carried (BadRequest, with field paths renamed to
 * the public request's, PreconditionFailure, RetryInfo); internal trailers are never forwarded.
 * Failures of the platform itself (unavailable, internal, timed out) get a generic message: theirs
 * may name internal addresses or services, which clients never learn.
 */
import { create, isMessage, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { RpcError } from "../lib/grpc/errors.js";

/** Renames an internal request field path to the public one; identity when they agree. */
export type FieldPathMapper = (internalPath: string) => string;

const samePath: FieldPathMapper = (p) => p;

type OutgoingDetail = { desc: DescMessage; value: MessageShape<DescMessage> };

function outgoingDetails(error: RpcError, mapPath: FieldPathMapper): OutgoingDetail[] {
  const details: OutgoingDetail[] = [];
  for (const detail of error.details) {
    if (isMessage(detail, BadRequestSchema)) {
      const value = create(BadRequestSchema, {
        fieldViolations: detail.fieldViolations.map((v) => ({ field: mapPath(v.field), description: v.description })),
      });
      details.push({ desc: BadRequestSchema, value });
    } else if (isMessage(detail, PreconditionFailureSchema)) {
      details.push({ desc: PreconditionFailureSchema, value: create(PreconditionFailureSchema, { violations: detail.violations }) });
    } else if (isMessage(detail, RetryInfoSchema)) {
      details.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: detail.retryDelay }) });
    }
  }
  return details;
}

/** Public messages for codes whose internal message describes the platform's insides. */
const GENERIC_MESSAGES: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "the service is temporarily unavailable; retry the request later",
  [Code.DeadlineExceeded]: "the request did not complete in time",
  [Code.Internal]: "internal error",
  [Code.Unknown]: "internal error",
  [Code.DataLoss]: "internal error",
};

function isCode(value: number): value is Code {
  return Number.isInteger(value) && value >= Code.Canceled && value <= Code.Unauthenticated;
}

/** The public error for anything an internal call or a handler threw. */
export function toConnectError(error: unknown, mapPath: FieldPathMapper = samePath): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof RpcError) {
    const code = isCode(error.code) ? error.code : Code.Unknown;
    const message =
      GENERIC_MESSAGES[code] ??
      (error.details.some((d) => isMessage(d, BadRequestSchema)) && mapPath !== samePath
        ? renamePathsInMessage(error, mapPath)
        : error.message);
    return new ConnectError(message, code, undefined, outgoingDetails(error, mapPath));
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

/** The INVALID_ARGUMENT message rebuilt with the public field paths. */
function renamePathsInMessage(error: RpcError, mapPath: FieldPathMapper): string {
  const violations = error.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
  if (violations.length === 0) return error.message;
  return `invalid request: ${violations.map((v) => `${mapPath(v.field)}: ${v.description}`).join("; ")}`;
}

/** Runs `call`, re-raising its failure as a public error. */
export async function relay<T>(call: () => Promise<T>, mapPath?: FieldPathMapper): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toConnectError(error, mapPath);
  }
}
