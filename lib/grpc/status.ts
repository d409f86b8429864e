// Mapping between ConnectErrors and gRPC statuses on grpc-js: the code, the message, the
// google.rpc.Status carried in the `grpc-status-details-bin` trailer, and the error's metadata as
// trailers (keys ending in `-bin` hold base64 in a ConnectError's Headers, bytes in grpc-js Metadata).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import { Metadata, type StatusObject } from "@grpc/grpc-js";
import { StatusSchema, type Status } from "../../gen/google/rpc/status_pb.js";
import { errorMessage, type ErrorDetail } from "./errors.js";

export { errorDetailRegistry } from "./errors.js";

export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** The status code of success, which Connect's Code leaves out. */
export const STATUS_OK = 0;

/** Packs ConnectError details as google.protobuf.Any. */
function packDetails(details: readonly ErrorDetail[]): Any[] {
  return details.map((detail) =>
    "desc" in detail
      ? anyPack(detail.desc, create(detail.desc, detail.value))
      : create(AnySchema, { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value }),
  );
}

/** The google.rpc.Status of an error: its code, message and details (a ConnectError's, or UNKNOWN). */
export function rpcStatusOf(error: unknown): Status {
  if (error instanceof ConnectError) {
    return create(StatusSchema, { code: error.code, message: error.rawMessage, details: packDetails(error.details) });
  }
  return create(StatusSchema, { code: Code.Unknown, message: error instanceof Error ? error.message : String(error) });
}

/** Encodes the google.rpc.Status trailer value. */
export function encodeStatusDetails(code: Code, message: string, details: readonly ErrorDetail[]): Buffer {
  const bytes = toBinary(StatusSchema, create(StatusSchema, { code, message, details: packDetails(details) }));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes the details of the google.rpc.Status trailer as a ConnectError's details (read them with
 * `findDetails`); [] when absent or unreadable.
 */
export function decodeStatusDetails(metadata: Metadata | undefined): ErrorDetail[] {
  const value = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (value === undefined || typeof value === "string") {
    return [];
  }
  try {
    return fromBinary(StatusSchema, value).details.map((any) => ({
      type: any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1),
      value: any.value,
    }));
  } catch {
    return [];
  }
}

/** grpc-js metadata as Headers: binary values (`-bin` keys) base64-encoded, as Connect keeps them. */
export function headersFromMetadata(metadata: Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      try {
        headers.append(key, typeof value === "string" ? value : encodeBinaryHeader(value));
      } catch {
        // A value Headers cannot hold is left out.
      }
    }
  }
  return headers;
}

/** Adds the entries of `headers` to `metadata`; `-bin` values are decoded from base64. */
function addHeaders(metadata: Metadata, headers: Headers): void {
  headers.forEach((value, key) => {
    try {
      if (key.endsWith("-bin")) {
        // Headers joins repeated values with ", "; base64 has neither character.
        for (const part of value.split(/,\s*/)) {
          if (part !== "") metadata.add(key, Buffer.from(decodeBinaryHeader(part)));
        }
      } else {
        metadata.add(key, value);
      }
    } catch {
      // A key or value grpc-js refuses is left out.
    }
  });
}

/**
 * The status a server answers for a handler failure. A ConnectError answers its own code, message,
 * details and metadata (as trailers); anything else answers INTERNAL with a message naming the
 * method (never a stack trace).
 */
export function statusFromError(err: unknown, path: string, trailer: Metadata): StatusObject {
  const metadata = trailer.clone();
  if (err instanceof ConnectError && (err.code as number) !== STATUS_OK) {
    addHeaders(metadata, err.metadata);
    metadata.remove(STATUS_DETAILS_KEY);
    if (err.details.length > 0) {
      metadata.set(STATUS_DETAILS_KEY, encodeStatusDetails(err.code, err.rawMessage, err.details));
    }
    return { code: err.code as number, details: err.rawMessage, metadata };
  }
  return { code: Code.Internal as number, details: `${path}: handler failed: ${errorMessage(err)}`, metadata };
}

/**
 * Turns whatever a grpc-js call failed with into a ConnectError: the status's code and message, its
 * trailers as metadata and the details of its google.rpc.Status.
 */
export function connectErrorFromCallError(err: unknown, path: string): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  if (isServiceError(err)) {
    const error = new ConnectError(err.details, err.code, headersFromMetadata(err.metadata), undefined, err);
    error.details = decodeStatusDetails(err.metadata);
    return error;
  }
  return new ConnectError(`${path}: ${errorMessage(err)}`, Code.Unknown, undefined, undefined, err);
}

function isServiceError(err: unknown): err is { code: Code; details: string; metadata: Metadata } {
  if (typeof err !== "object" || err === null) {
    return false;
  }
  const e = err as { code?: unknown; details?: unknown; metadata?: unknown };
  return typeof e.code === "number" && typeof e.details === "string" && e.metadata instanceof Metadata;
}
