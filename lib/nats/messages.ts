/**
 * Protobuf messages on JetStream.
 *
 * Every message the platform publishes carries these headers:
 *   Dd-Message-Type   the full protobuf type name of the payload, e.g.
 *                     `dronedelivery.drone.v1.DroneLocationEvent`; consumers check it before decoding
 *   Nats-Msg-Id       when the publisher gives a message id (idempotency key, `<deliveryId>:<stage>`):
 *                     JetStream stores a message once per id within the stream's duplicate window
 *   traceparent, tracestate   W3C trace context, added by injectTraceContext() below
 * The payload is the message in protobuf binary encoding.
 */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { headers as createHeaders, type JetStreamClient, type MsgHdrs, type PubAck } from "nats";
import { producerSpan, subjectPattern } from "../observability/trace-nats.js";
import { isTracingOn } from "../observability/trace-runtime.js";
import { STREAMS } from "./streams.js";
const STREAM_SUBJECTS = Object.values(STREAMS).flatMap((s) => s.subjects);

/** Header naming the protobuf type of the payload. */
export const MESSAGE_TYPE_HEADER = "Dd-Message-Type";
/** JetStream's de-duplication header. */
export const MESSAGE_ID_HEADER = "Nats-Msg-Id";

export interface PublishMessageOptions {
  /** Sets Nats-Msg-Id: a repeated publish with the same id is stored once (PubAck.duplicate). */
  msgId?: string;
  /** Extra headers. */
  headers?: Record<string, string> | MsgHdrs;
  /** Fail unless the subject is stored by this stream. */
  expectStream?: string;
  /** How long to wait for the JetStream ack, in ms. Default: the client's (5000). */
  timeoutMs?: number;
}

/**
 * Where the W3C trace context (`traceparent`, `tracestate`) of the current span is written into
 * outgoing headers. Nothing is added until tracing is wired into the platform.
 */


/** The stream subject pattern a subject falls under, for span names (only while tracing is on). */
function templateOf(subject: string): string | undefined {
  return subjectPattern(subject, STREAM_SUBJECTS);
}

function isMsgHdrs(value: Record<string, string> | MsgHdrs): value is MsgHdrs {
  return typeof (value as MsgHdrs).keys === "function" && typeof (value as MsgHdrs).values === "function";
}

/**
 * Encodes `message` with `schema` and publishes it to JetStream on `subject`, with the
 * Dd-Message-Type header (and Nats-Msg-Id when `msgId` is given). Resolves with the PubAck once
 * JetStream has stored the message; `duplicate` is true when an earlier message with the same id
 * was stored within the stream's duplicate window (and this one was not stored again).
 */
export async function publishMessage<Desc extends DescMessage>(
  js: JetStreamClient,
  subject: string,
  schema: Desc,
  message: MessageShape<Desc>,
  options: PublishMessageOptions = {},
): Promise<PubAck> {
  const h = createHeaders();
  if (options.headers) {
    if (isMsgHdrs(options.headers)) {
      for (const key of options.headers.keys()) {
        for (const value of options.headers.values(key)) h.append(key, value);
      }
    } else {
      for (const [key, value] of Object.entries(options.headers)) h.set(key, value);
    }
  }
  h.set(MESSAGE_TYPE_HEADER, schema.typeName);
  return producerSpan(subject, h, () => js.publish(subject, toBinary(schema, message), {
    headers: h,
    ...(options.msgId !== undefined ? { msgID: options.msgId } : {}),
    ...(options.expectStream !== undefined ? { expect: { streamName: options.expectStream } } : {}),
    ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
  }), { messageId: options.msgId, template: isTracingOn() ? templateOf(subject) : undefined });
}

/**
 * Anything carrying a payload and headers: a JetStream message (JsMsg), a core message (Msg), or a
 * message read directly from a stream (StoredMsg, whose headers field is named `header`).
 */
export interface ReceivedMessage {
  subject?: string;
  data: Uint8Array;
  headers?: MsgHdrs | undefined;
  header?: MsgHdrs | undefined;
}

/** Raised by decodeMessage() when a message is not the expected type or cannot be decoded. */
export class MessageDecodeError extends Error {
  override name = "MessageDecodeError";
  constructor(
    message: string,
    readonly subject: string | undefined,
    readonly expectedType: string,
    readonly actualType: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The Dd-Message-Type header of a received message, if present. */
export function messageTypeOf(msg: ReceivedMessage): string | undefined {
  const h = msg.headers ?? msg.header;
  const value = h?.get(MESSAGE_TYPE_HEADER);
  return value ? value : undefined;
}

/**
 * Decodes a received message as `schema` after checking its Dd-Message-Type header names that
 * type. Throws MessageDecodeError when the header is missing or names another type, or when the
 * payload is not valid protobuf for the type.
 */
export function decodeMessage<Desc extends DescMessage>(msg: ReceivedMessage, schema: Desc): MessageShape<Desc> {
  const actual = messageTypeOf(msg);
  const where = msg.subject ? ` on ${msg.subject}` : "";
  if (actual === undefined) {
    throw new MessageDecodeError(
      `message${where} has no ${MESSAGE_TYPE_HEADER} header; expected ${schema.typeName}`,
      msg.subject,
      schema.typeName,
      undefined,
    );
  }
  if (actual !== schema.typeName) {
    throw new MessageDecodeError(
      `message${where} is a ${actual}, expected ${schema.typeName}`,
      msg.subject,
      schema.typeName,
      actual,
    );
  }
  try {
    return fromBinary(schema, msg.data);
  } catch (err) {
    throw new MessageDecodeError(
      `message${where} is not a valid ${schema.typeName}: ${err instanceof Error ? err.message : String(err)}`,
      msg.subject,
      schema.typeName,
      actual,
      { cause: err },
    );
  }
}
