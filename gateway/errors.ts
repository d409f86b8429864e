/**
 * What public callers learn of a failure. Internal calls fail with a ConnectError, the error the
 * gateway answers with too; the public one keeps its code and message. Of its details only the
 * google.rpc messages a client can act on are carried (BadRequest, with field paths renamed to the
 * public request's, PreconditionFailure, RetryInfo); its metadata (internal trailers) is never
 * forwarded. Failures of the platform itself (unavailable, internal, timed out) get a generic
 * message: theirs may name internal addresses or services, which clients never learn.
 */
import { create, createRegistry, isMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import type { OutgoingErrorDetail } from "../lib/grpc/errors.js";

/** Renames an internal request field path to the public one; identity when they agree. */
export type FieldPathMapper = (internalPath: string) => string;

const samePath: FieldPathMapper = (p) => p;

/** The details a client can act on. */
const ACTIONABLE_DETAILS = createRegistry(BadRequestSchema, PreconditionFailureSchema, RetryInfoSchema);

function publicDetails(error: ConnectError, mapPath: FieldPathMapper): OutgoingErrorDetail[] {
  return error.findDetails(ACTIONABLE_DETAILS).flatMap((detail): OutgoingErrorDetail[] => {
    if (isMessage(detail, BadRequestSchema)) {
      const value = create(BadRequestSchema, {
        fieldViolations: detail.fieldViolations.map((v) => ({ field: mapPath(v.field), description: v.description })),
      });
      return [{ desc: BadRequestSchema, value }];
    }
    if (isMessage(detail, PreconditionFailureSchema)) {
      return [{ desc: PreconditionFailureSchema, value: create(PreconditionFailureSchema, { violations: detail.violations }) }];
    }
    if (isMessage(detail, RetryInfoSchema)) {
      return [{ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: detail.retryDelay }) }];
    }
    return [];
  });
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
export function publicError(error: unknown, mapPath: FieldPathMapper = samePath): ConnectError {
  if (!(error instanceof ConnectError)) {
    return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
  }
  const code = isCode(error.code) ? error.code : Code.Unknown;
  const message = GENERIC_MESSAGES[code] ?? (mapPath === samePath ? error.rawMessage : renamePathsInMessage(error, mapPath));
  return new ConnectError(message, code, undefined, publicDetails(error, mapPath), error);
}

/** The INVALID_ARGUMENT message rebuilt with the public field paths (the message itself without violations). */
function renamePathsInMessage(error: ConnectError, mapPath: FieldPathMapper): string {
  const violations = error.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
  if (violations.length === 0) return error.rawMessage;
  return `invalid request: ${violations.map((v) => `${mapPath(v.field)}: ${v.description}`).join("; ")}`;
}

/** Runs `call`, re-raising its failure as a public error. */
export async function relay<T>(call: () => Promise<T>, mapPath?: FieldPathMapper): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw publicError(error, mapPath);
  }
}
