// The error type of every RPC: servers throw it to answer a specific status, clients receive it
// for every failed call. Details are google.rpc error detail messages (BadRequest, RetryInfo, ...)
// carried in the `grpc-status-details-bin` trailer.

import { create, isMessage, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Metadata, status } from "@grpc/grpc-js";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";

export interface RpcErrorOptions {
  /** google.rpc error detail messages (or google.protobuf.Any) sent with the status. */
  readonly details?: readonly Message[];
  /** Extra trailers sent with the status (server) or the trailers received (client). */
  readonly metadata?: Metadata;
  readonly cause?: unknown;
}

export class RpcError extends Error {
  override readonly name = "RpcError";
  /** The gRPC status code. */
  readonly code: status;
  /** Decoded google.rpc error details; a google.protobuf.Any for types the client does not know. */
  readonly details: Message[];
  /** Trailers: sent with the status on the server, received with it on the client. */
  readonly metadata: Metadata;

  constructor(code: status, message: string, options: RpcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = [...(options.details ?? [])];
    this.metadata = options.metadata ?? new Metadata();
  }

  /** The status code's name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return status[this.code] ?? `CODE_${this.code}`;
  }

  /** The details of one type, e.g. `err.findDetails(BadRequestSchema)`. */
  findDetails<Desc extends DescMessage>(schema: Desc): MessageShape<Desc>[] {
    return this.details.filter((d): d is MessageShape<Desc> => isMessage(d, schema));
  }
}

export interface FieldViolation {
  /** Path of the offending request field, e.g. `account.user_id`. */
  readonly field: string;
  readonly description: string;
}

/** INVALID_ARGUMENT with a google.rpc.BadRequest listing the offending fields. */
export function invalidArgument(violations: readonly FieldViolation[], message?: string): RpcError {
  const text =
    message ??
    (violations.length === 0
      ? "invalid request"
      : `invalid request: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`);
  const badRequest = create(BadRequestSchema, {
    fieldViolations: violations.map((v) => ({ field: v.field, description: v.description })),
  });
  return new RpcError(status.INVALID_ARGUMENT, text, { details: [badRequest] });
}

/** NOT_FOUND for the thing described, e.g. `notFound("account a-1")`. */
export function notFound(what: string, ...details: Message[]): RpcError {
  return new RpcError(status.NOT_FOUND, `${what} not found`, { details });
}

/** ALREADY_EXISTS for the thing described, e.g. `alreadyExists("account a-1")`. */
export function alreadyExists(what: string, ...details: Message[]): RpcError {
  return new RpcError(status.ALREADY_EXISTS, `${what} already exists`, { details });
}

export interface PreconditionViolation {
  /** A service-specific type, e.g. "ACCOUNT_STATUS". */
  readonly type: string;
  /** What failed the check, e.g. "account:a-1". */
  readonly subject: string;
  readonly description: string;
}

/** FAILED_PRECONDITION, with a google.rpc.PreconditionFailure when violations are given. */
export function failedPrecondition(message: string, violations: readonly PreconditionViolation[] = []): RpcError {
  const details =
    violations.length === 0
      ? []
      : [create(PreconditionFailureSchema, { violations: violations.map((v) => ({ ...v })) })];
  return new RpcError(status.FAILED_PRECONDITION, message, { details });
}

/** ABORTED: a concurrency conflict; the caller may retry the whole sequence. */
export function aborted(message: string, ...details: Message[]): RpcError {
  return new RpcError(status.ABORTED, message, { details });
}

/** UNAVAILABLE, with a google.rpc.RetryInfo when a retry delay is given. */
export function unavailable(message: string, retryAfterMs?: number): RpcError {
  return new RpcError(status.UNAVAILABLE, message, { details: retryDetails(retryAfterMs) });
}

/** RESOURCE_EXHAUSTED, with a google.rpc.RetryInfo when a retry delay is given. */
export function resourceExhausted(message: string, retryAfterMs?: number): RpcError {
  return new RpcError(status.RESOURCE_EXHAUSTED, message, { details: retryDetails(retryAfterMs) });
}

function retryDetails(retryAfterMs: number | undefined): Message[] {
  return retryAfterMs === undefined ? [] : [create(RetryInfoSchema, { retryDelay: durationFromMs(retryAfterMs) })];
}

/** The field violations of an INVALID_ARGUMENT error's google.rpc.BadRequest details; [] otherwise. */
export function fieldViolations(err: unknown): FieldViolation[] {
  if (!(err instanceof RpcError)) {
    return [];
  }
  return err
    .findDetails(BadRequestSchema)
    .flatMap((br) => br.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
}

/** The retry delay a server asked for through google.rpc.RetryInfo, in milliseconds. */
export function retryDelayMs(err: unknown): number | undefined {
  if (!(err instanceof RpcError)) {
    return undefined;
  }
  const delay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return delay === undefined ? undefined : durationMs(delay);
}
