/**
 * Spans of NATS messages, following the OpenTelemetry messaging conventions: a PRODUCER span
 * around a publish, whose W3C trace context travels in the message headers, and a CONSUMER span
 * around the handling of a received message, child of the producer's span, with the handler
 * running inside it (so the gRPC calls and publishes it makes continue the same trace).
 *
 *   publish: producerSpan(subject, headers, () => js.publish(subject, data, { headers }))
 *   consume: consumerSpan(msg.subject, msg.headers, () => handle(msg))
 *
 * Span names `publish <subject>` and `process <subject>` (or the subject template given in the
 * options); attributes messaging.system=nats, messaging.destination.name, messaging.operation.type
 * and .name, messaging.message.id (Nats-Msg-Id). While tracing is off the span functions only run
 * what they wrap; injectIntoHeaders and extractFromHeaders always work.
 */
import { SpanKind, SpanStatusCode, context, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { ATTR_ERROR_TYPE } from "@opentelemetry/semantic-conventions";
import type { MsgHdrs } from "nats";
import { extractTraceContext, injectIntoMsgHdrs } from "./trace-propagation.js";
import { contextForService, tracerIn } from "./trace-runtime.js";

export const ATTR_MESSAGING_SYSTEM = "messaging.system";
export const ATTR_MESSAGING_DESTINATION_NAME = "messaging.destination.name";
export const ATTR_MESSAGING_DESTINATION_TEMPLATE = "messaging.destination.template";
export const ATTR_MESSAGING_OPERATION_TYPE = "messaging.operation.type";
export const ATTR_MESSAGING_OPERATION_NAME = "messaging.operation.name";
export const ATTR_MESSAGING_MESSAGE_ID = "messaging.message.id";

/** JetStream's de-duplication header (the message id). */
const MESSAGE_ID_HEADER = "Nats-Msg-Id";

export interface MessageSpanOptions {
  /** The service the span belongs to; default: the active context's, else the process default. */
  readonly service?: string;
  /**
   * A low-cardinality form of the subject for the span name, e.g. `delivery.*.status` for
   * `delivery.d-42.status`; the full subject stays in messaging.destination.name.
   */
  readonly template?: string;
  /** The message id (Nats-Msg-Id); by default read from the headers. */
  readonly messageId?: string;
  /** More attributes for the span. */
  readonly attributes?: Attributes;
}

/** Writes the active trace context (`traceparent`, `tracestate`) into outgoing message headers. */
export function injectIntoHeaders(headers: MsgHdrs): void {
  injectIntoMsgHdrs(context.active(), headers);
}

/**
 * The trace context a received message carries (the root context when it carries none); header
 * names match in any case. Use it as a parent: `context.with(extractFromHeaders(msg.headers), fn)`.
 */
export function extractFromHeaders(headers?: MsgHdrs): Context {
  return extractTraceContext(headers);
}

/**
 * Runs a publish in a PRODUCER span (child of the active span): the span's trace context is
 * written into `headers` before `fn` runs, so `fn` must send those headers. The span ends when the
 * promise settles; a rejection marks it as an error.
 */
export async function producerSpan<T>(
  subject: string,
  headers: MsgHdrs,
  fn: () => Promise<T>,
  options?: MessageSpanOptions,
): Promise<T> {
  const parent = context.active();
  const found = tracerIn(parent, options?.service);
  if (found === undefined) {
    return fn();
  }
  const span = found.tracer.startSpan(
    `publish ${options?.template ?? subject}`,
    { kind: SpanKind.PRODUCER, attributes: messageAttributes(subject, "send", "publish", headers, options) },
    parent,
  );
  const spanContext = trace.setSpan(contextForService(parent, found.service), span);
  injectIntoMsgHdrs(spanContext, headers);
  return runInSpan(span, spanContext, fn);
}

/**
 * Runs the handling of a received message in a CONSUMER span whose parent is the trace context in
 * its headers (a new trace when there is none, never the context the consumer loop runs in). `fn`
 * runs inside the span's context, so what it starts, even after awaits, is a child. The span ends
 * when the promise settles; a rejection marks it as an error.
 */
export async function consumerSpan<T>(
  subject: string,
  headers: MsgHdrs | undefined,
  fn: () => Promise<T>,
  options?: MessageSpanOptions,
): Promise<T> {
  const found = tracerIn(context.active(), options?.service);
  if (found === undefined) {
    return fn();
  }
  const parent = contextForService(extractTraceContext(headers), found.service);
  const span = found.tracer.startSpan(
    `process ${options?.template ?? subject}`,
    { kind: SpanKind.CONSUMER, attributes: messageAttributes(subject, "process", "process", headers, options) },
    parent,
  );
  return runInSpan(span, trace.setSpan(parent, span), fn);
}

async function runInSpan<T>(span: Span, spanContext: Context, fn: () => Promise<T>): Promise<T> {
  try {
    const result = await context.with(spanContext, fn);
    span.end();
    return result;
  } catch (err) {
    span.setAttribute(ATTR_ERROR_TYPE, errorTypeOf(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    if (err instanceof Error) {
      span.recordException(err);
    }
    span.end();
    throw err;
  }
}

function messageAttributes(
  subject: string,
  operationType: string,
  operationName: string,
  headers: MsgHdrs | undefined,
  options: MessageSpanOptions | undefined,
): Attributes {
  const messageId = options?.messageId ?? headerValue(headers, MESSAGE_ID_HEADER);
  return {
    [ATTR_MESSAGING_SYSTEM]: "nats",
    [ATTR_MESSAGING_DESTINATION_NAME]: subject,
    [ATTR_MESSAGING_OPERATION_TYPE]: operationType,
    [ATTR_MESSAGING_OPERATION_NAME]: operationName,
    ...(options?.template === undefined ? {} : { [ATTR_MESSAGING_DESTINATION_TEMPLATE]: options.template }),
    ...(messageId === undefined ? {} : { [ATTR_MESSAGING_MESSAGE_ID]: messageId }),
    ...options?.attributes,
  };
}

/**
 * The first of `patterns` (NATS subjects with `*` and `>` wildcards, e.g. the subjects of the
 * platform's streams) that `subject` matches: a low-cardinality name for the `template` option.
 */
export function subjectPattern(subject: string, patterns: Iterable<string>): string | undefined {
  const tokens = subject.split(".");
  for (const pattern of patterns) {
    if (matchesPattern(tokens, pattern.split("."))) {
      return pattern;
    }
  }
  return undefined;
}

function matchesPattern(tokens: readonly string[], pattern: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i];
    if (want === ">") {
      return i === pattern.length - 1 && tokens.length > i;
    }
    if (i >= tokens.length || (want !== "*" && want !== tokens[i])) {
      return false;
    }
  }
  return tokens.length === pattern.length;
}

function headerValue(headers: MsgHdrs | undefined, name: string): string | undefined {
  if (headers === undefined || !headers.has(name)) {
    return undefined;
  }
  const value = headers.get(name);
  return value === "" ? undefined : value;
}

function errorTypeOf(err: unknown): string {
  if (err instanceof Error) {
    return err.name === "Error" ? err.constructor.name : err.name;
  }
  return typeof err;
}
