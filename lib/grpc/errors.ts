// The error of every RPC, internal and public: Connect's ConnectError with a Code (gRPC and Connect
// codes share their numbers). Servers throw it to answer a specific status, clients receive it for
// every failed call. Details are google.rpc error detail messages (BadRequest, RetryInfo, ...),
// carried in the `grpc-status-details-bin` trailer; `err.findDetails(schema)` reads them.

import { create, createRegistry, type Message } from "@bufbuild/protobuf";
import { AnySchema, durationFromMs, durationMs, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
  file_google_rpc_error_details,
} from "../../gen/google/rpc/error_details_pb.js";

/** One detail of a ConnectError: a message with its schema, or one received from the wire. */
export type ErrorDetail = ConnectError["details"][number];

/** A detail given as a message with its schema (what the ConnectError constructor takes). */
export type OutgoingErrorDetail = Extract<ErrorDetail, { desc: unknown }>;

/** A ConnectError with details of either kind (the constructor takes only outgoing ones). */
function withDetails(code: Code, message: string, details: ErrorDetail[]): ConnectError {
  const error = new ConnectError(message, code);
  error.details = details;
  return error;
}

/** Every google.rpc error detail type: BadRequest, ErrorInfo, RetryInfo, PreconditionFailure, ... */
export const errorDetailRegistry = createRegistry(file_google_rpc_error_details);

/**
 * Detail messages as ConnectError details. A google.protobuf.Any is kept as it is; types outside
 * the google.rpc error details cannot be sent this way and are left out (give their schema).
 */
export function errorDetails(details: readonly Message[]): ErrorDetail[] {
  const result: ErrorDetail[] = [];
  for (const detail of details) {
    if (detail.$typeName === AnySchema.typeName) {
      const any = detail as Any;
      result.push({ type: any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1), value: any.value });
      continue;
    }
    const desc = errorDetailRegistry.getMessage(detail.$typeName);
    if (desc !== undefined) {
      result.push({ desc, value: detail });
    }
  }
  return result;
}

/**
 * The message of a failure as it travels: a ConnectError's own message (without the "[code]" prefix
 * of `err.message`), an Error's message, or a description of a thrown non-error value.
 */
export function errorMessage(err: unknown): string {
  if (err instanceof ConnectError) {
    return err.rawMessage;
  }
  if (err instanceof Error) {
    return err.message === "" ? err.name : err.message;
  }
  try {
    return `threw a non-error value: ${String(err)}`;
  } catch {
    return "threw a non-error value";
  }
}

/**
 * Base of the platform's own kinds of ConnectError (an open circuit, a full bulkhead, a spent
 * budget). ConnectError recognises any ConnectError as an instance of itself and of every subclass;
 * `instanceof` a subclass of this one checks the prototype chain instead, while `instanceof
 * ConnectError` stays true.
 */
export class ConnectErrorKind extends ConnectError {
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

export interface FieldViolation {
  /** Path of the offending request field, e.g. `account.user_id`. */
  readonly field: string;
  readonly description: string;
}

/** INVALID_ARGUMENT with a google.rpc.BadRequest listing the offending fields. */
export function invalidArgument(violations: readonly FieldViolation[], message?: string): ConnectError {
  const text =
    message ??
    (violations.length === 0
      ? "invalid request"
      : `invalid request: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`);
  const badRequest = create(BadRequestSchema, {
    fieldViolations: violations.map((v) => ({ field: v.field, description: v.description })),
  });
  return new ConnectError(text, Code.InvalidArgument, undefined, [{ desc: BadRequestSchema, value: badRequest }]);
}

/** NOT_FOUND for the thing described, e.g. `notFound("account a-1")`. */
export function notFound(what: string, ...details: Message[]): ConnectError {
  return withDetails(Code.NotFound, `${what} not found`, errorDetails(details));
}

/** ALREADY_EXISTS for the thing described, e.g. `alreadyExists("account a-1")`. */
export function alreadyExists(what: string, ...details: Message[]): ConnectError {
  return withDetails(Code.AlreadyExists, `${what} already exists`, errorDetails(details));
}

export interface PreconditionViolation {
  /** A service-specific type, e.g. "ACCOUNT_STATUS". */
  readonly type: string;
  /** What failed the check, e.g. "account:a-1". */
  readonly subject: string;
  readonly description: string;
}

/** FAILED_PRECONDITION, with a google.rpc.PreconditionFailure when violations are given. */
export function failedPrecondition(message: string, violations: readonly PreconditionViolation[] = []): ConnectError {
  const details: OutgoingErrorDetail[] =
    violations.length === 0
      ? []
      : [{ desc: PreconditionFailureSchema, value: create(PreconditionFailureSchema, { violations: violations.map((v) => ({ ...v })) }) }];
  return new ConnectError(message, Code.FailedPrecondition, undefined, details);
}

/** ABORTED: a concurrency conflict; the caller may retry the whole sequence. */
export function aborted(message: string, ...details: Message[]): ConnectError {
  return withDetails(Code.Aborted, message, errorDetails(details));
}

/** UNAVAILABLE, with a google.rpc.RetryInfo when a retry delay is given. */
export function unavailable(message: string, retryAfterMs?: number): ConnectError {
  return new ConnectError(message, Code.Unavailable, undefined, retryDetails(retryAfterMs));
}

/** RESOURCE_EXHAUSTED, with a google.rpc.RetryInfo when a retry delay is given. */
export function resourceExhausted(message: string, retryAfterMs?: number): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, retryDetails(retryAfterMs));
}

/** A google.rpc.RetryInfo asking for `retryAfterMs` (none when undefined). */
export function retryDetails(retryAfterMs: number | undefined): OutgoingErrorDetail[] {
  return retryAfterMs === undefined
    ? []
    : [{ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(retryAfterMs) }) }];
}

/** The field violations of an INVALID_ARGUMENT error's google.rpc.BadRequest details; [] otherwise. */
export function fieldViolations(err: unknown): FieldViolation[] {
  if (!(err instanceof ConnectError)) {
    return [];
  }
  return err
    .findDetails(BadRequestSchema)
    .flatMap((br) => br.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
}

/** The retry delay a server asked for through google.rpc.RetryInfo, in milliseconds. */
export function retryDelayMs(err: unknown): number | undefined {
  if (!(err instanceof ConnectError)) {
    return undefined;
  }
  const delay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return delay === undefined ? undefined : durationMs(delay);
}
