// Binary codec between protobuf-es messages and the bytes grpc-js moves on the wire.

import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import { messageInitProblem } from "./validate.js";

/** The gRPC path of a method: `/package.Service/Method`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

export type EncodeResult = { readonly ok: true; readonly bytes: Buffer } | { readonly ok: false; readonly reason: string };

/**
 * Turns a message or an init object into wire bytes. Never throws: a value that is not a valid
 * `schema` message (wrong field types, another message type, null/undefined) or that fails to
 * encode is reported as a reason.
 */
export function encodeMessage(schema: DescMessage, value: unknown): EncodeResult {
  const problem = messageInitProblem(schema, value);
  if (problem !== undefined) {
    return { ok: false, reason: problem };
  }
  try {
    const message = create(schema, value as Parameters<typeof create>[1]);
    return { ok: true, bytes: toBuffer(toBinary(schema, message)) };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** A request or response that could not be decoded; carried as a value so it can be answered. */
export class DecodeFailure {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {}
}

/** Decodes wire bytes into a message of `schema`, or a DecodeFailure. Never throws. */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> | DecodeFailure {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    return new DecodeFailure(schema.typeName, err instanceof Error ? err.message : String(err));
  }
}

/** Views bytes as a Buffer without copying. */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Serializer taking wire bytes as they are and encoding anything else as a `schema` message. */
export function serializerFor(schema: DescMessage): (value: unknown) => Buffer {
  return (value) => {
    if (value instanceof Uint8Array) {
      return toBuffer(value);
    }
    const encoded = encodeMessage(schema, value);
    if (!encoded.ok) {
      throw new Error(`invalid ${schema.typeName}: ${encoded.reason}`);
    }
    return encoded.bytes;
  };
}

/** Deserializer that throws on bytes that are not a `schema` message. */
export function decoderFor<Desc extends DescMessage>(schema: Desc): (bytes: Buffer) => MessageShape<Desc> {
  return (bytes) => fromBinary(schema, bytes);
}

/** Serializer for values that are already wire bytes. */
export function passThrough(value: Uint8Array): Buffer {
  return toBuffer(value);
}
