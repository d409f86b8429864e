/**
 * W3C trace context (`traceparent`, `tracestate`) in and out of the carriers the platform uses:
 * grpc-js Metadata, NATS message headers, Fetch `Headers` (Connect handlers), Node's incoming
 * HTTP headers and plain records. One W3C propagator is used directly, so propagation does not
 * depend on what is registered globally.
 */
import { ROOT_CONTEXT, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { Metadata } from "@grpc/grpc-js";
import type { MsgHdrs } from "nats";

/** Request headers written by the propagator, as plain strings: copy them into the outgoing call. */
export type TraceCarrier = Record<string, string>;

/** Plain header records, e.g. Node's `IncomingHttpHeaders`. */
export type HeaderRecord = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Anything trace context can be read from. */
export type TraceCarrierSource = Metadata | MsgHdrs | Headers | HeaderRecord;

const propagator = new W3CTraceContextPropagator();

const recordSetter: TextMapSetter<TraceCarrier> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const msgHdrsSetter: TextMapSetter<MsgHdrs> = {
  set: (headers, key, value) => headers.set(key, value),
};

/** Writes the trace context of `ctx` into `carrier` (nothing when `ctx` holds no valid span). */
export function injectTraceContext(ctx: Context, carrier: TraceCarrier): void {
  propagator.inject(ctx, carrier, recordSetter);
}

/** Writes the trace context of `ctx` into NATS message headers. */
export function injectIntoMsgHdrs(ctx: Context, headers: MsgHdrs): void {
  propagator.inject(ctx, headers, msgHdrsSetter);
}

/**
 * The remote trace context in `carrier`, on top of `base` (default: the root context, so a server
 * or consumer span never inherits whatever context its transport's callback happened to run in).
 * Returns `base` unchanged when the carrier holds no valid `traceparent`.
 */
export function extractTraceContext(carrier: TraceCarrierSource | undefined, base: Context = ROOT_CONTEXT): Context {
  if (carrier === undefined) {
    return base;
  }
  return propagator.extract(base, carrier, getterFor(carrier));
}

function getterFor(carrier: TraceCarrierSource): TextMapGetter<TraceCarrierSource> {
  if (isMetadata(carrier)) {
    return metadataGetter as TextMapGetter<TraceCarrierSource>;
  }
  if (isMsgHdrs(carrier)) {
    return msgHdrsGetter as TextMapGetter<TraceCarrierSource>;
  }
  if (isFetchHeaders(carrier)) {
    return fetchHeadersGetter as TextMapGetter<TraceCarrierSource>;
  }
  return recordGetter as TextMapGetter<TraceCarrierSource>;
}

function isMetadata(carrier: TraceCarrierSource): carrier is Metadata {
  return typeof (carrier as Metadata).getMap === "function" && typeof (carrier as Metadata).get === "function";
}

function isMsgHdrs(carrier: TraceCarrierSource): carrier is MsgHdrs {
  const h = carrier as MsgHdrs;
  return typeof h.keys === "function" && typeof h.values === "function" && typeof h.last === "function";
}

function isFetchHeaders(carrier: TraceCarrierSource): carrier is Headers {
  const h = carrier as Headers;
  return typeof h.get === "function" && typeof h.forEach === "function";
}

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (metadata) => Object.keys(metadata.getMap()),
  get: (metadata, key) => {
    const values = metadata.get(key).filter((v): v is string => typeof v === "string");
    return values.length === 0 ? undefined : values;
  },
};

// NATS header names are case-sensitive and some publishers write `Traceparent`: match any case.
const msgHdrsGetter: TextMapGetter<MsgHdrs> = {
  keys: (headers) => headers.keys(),
  get: (headers, key) => {
    const wanted = key.toLowerCase();
    for (const name of headers.keys()) {
      if (name.toLowerCase() === wanted) {
        const values = headers.values(name);
        return values.length === 0 ? undefined : values;
      }
    }
    return undefined;
  },
};

const fetchHeadersGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

const recordGetter: TextMapGetter<HeaderRecord> = {
  keys: (record) => Object.keys(record),
  get: (record, key) => {
    const value = record[key] ?? record[key.toLowerCase()];
    if (value === undefined) {
      return undefined;
    }
    return typeof value === "string" ? value : [...value];
  },
};
