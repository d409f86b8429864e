// Mapping between thrown errors and gRPC statuses, including the google.rpc.Status carried in the
// `grpc-status-details-bin` trailer.

import { create, fromBinary, createRegistry, toBinary, type Message } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { Metadata, status, type StatusObject } from "@grpc/grpc-js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema, type Status } from "../../gen/google/rpc/status_pb.js";
import { RpcError } from "./errors.js";

export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** Every google.rpc error detail type: BadRequest, ErrorInfo, RetryInfo, PreconditionFailure, ... */
export const errorDetailRegistry = createRegistry(file_google_rpc_error_details);

/**
 * Packs details as google.protobuf.Any. A detail that already is an Any is kept; types outside the
 * google.rpc error details cannot be packed here and are left out (pack them with `anyPack`).
 */
function packDetails(details: readonly Message[]): Any[] {
  const packed: Any[] = [];
  for (const detail of details) {
    if (detail.$typeName === AnySchema.typeName) {
      packed.push(detail as Any);
      continue;
    }
    const schema = errorDetailRegistry.getMessage(detail.$typeName);
    if (schema !== undefined) {
      packed.push(anyPack(schema, detail));
    }
  }
  return packed;
}

/** The google.rpc.Status of an error: its code, message and details (an RpcError's, or UNKNOWN). */
export function rpcStatusOf(error: unknown): Status {
  if (error instanceof RpcError) {
    return create(StatusSchema, { code: error.code, message: error.message, details: packDetails(error.details) });
  }
  return create(StatusSchema, { code: status.UNKNOWN, message: error instanceof Error ? error.message : String(error) });
}

/** Encodes the google.rpc.Status trailer value. */
export function encodeStatusDetails(code: status, message: string, details: readonly Message[]): Buffer {
  const bytes = toBinary(StatusSchema, create(StatusSchema, { code, message, details: packDetails(details) }));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes the details of the google.rpc.Status trailer; [] when absent or unreadable. */
export function decodeStatusDetails(metadata: Metadata | undefined): Message[] {
  const value = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (value === undefined || typeof value === "string") {
    return [];
  }
  try {
    const statusMessage = fromBinary(StatusSchema, value);
    return statusMessage.details.map((any) => anyUnpack(any, errorDetailRegistry) ?? any);
  } catch {
    return [];
  }
}

/**
 * The status a server answers for a handler failure. An RpcError answers its own code, message,
 * details and trailers; anything else answers INTERNAL with a message naming the method (never a
 * stack trace).
 */
export function statusFromError(err: unknown, path: string, trailer: Metadata): StatusObject {
  const metadata = trailer.clone();
  if (err instanceof RpcError && err.code !== status.OK) {
    metadata.merge(err.metadata);
    metadata.remove(STATUS_DETAILS_KEY);
    if (err.details.length > 0) {
      metadata.set(STATUS_DETAILS_KEY, encodeStatusDetails(err.code, err.message, err.details));
    }
    return { code: err.code, details: err.message, metadata };
  }
  return { code: status.INTERNAL, details: `${path}: handler failed: ${reasonOf(err)}`, metadata };
}

/** Turns whatever a grpc-js call failed with into an RpcError, decoding the status details. */
export function rpcErrorFromCallError(err: unknown, path: string): RpcError {
  if (err instanceof RpcError) {
    return err;
  }
  if (isServiceError(err)) {
    return new RpcError(err.code, err.details, {
      metadata: err.metadata,
      details: decodeStatusDetails(err.metadata),
      cause: err,
    });
  }
  return new RpcError(status.UNKNOWN, `${path}: ${reasonOf(err)}`, { cause: err });
}

function isServiceError(err: unknown): err is { code: status; details: string; metadata: Metadata } {
  if (typeof err !== "object" || err === null) {
    return false;
  }
  const e = err as { code?: unknown; details?: unknown; metadata?: unknown };
  return typeof e.code === "number" && typeof e.details === "string" && e.metadata instanceof Metadata;
}

/** The message of an Error, or a description of a thrown non-error value. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    return err.message === "" ? err.name : err.message;
  }
  try {
    return `threw a non-error value: ${String(err)}`;
  } catch {
    return "threw a non-error value";
  }
}
