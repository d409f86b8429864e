/**
 * The ids of the active span, for log lines: a pino logger created with
 * `pino({ mixin: traceLogFields })` adds `trace_id` and `span_id` to every line written inside a
 * span (a handler, a consumer, anything they await), so logs and traces join on the trace id.
 */
import { context, isSpanContextValid, trace, type SpanContext } from "@opentelemetry/api";

function activeSpanContext(): SpanContext | undefined {
  const spanContext = trace.getSpanContext(context.active());
  return spanContext !== undefined && isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** The trace id (32 hex digits) of the active span; undefined outside a span or with tracing off. */
export function currentTraceId(): string | undefined {
  return activeSpanContext()?.traceId;
}

/** The span id (16 hex digits) of the active span; undefined outside a span or with tracing off. */
export function currentSpanId(): string | undefined {
  return activeSpanContext()?.spanId;
}

/** `{ trace_id, span_id }` of the active span, or `{}`: a pino `mixin`. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const spanContext = activeSpanContext();
  return spanContext === undefined ? {} : { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
