/**
 * Spans of gRPC calls, following the OpenTelemetry RPC conventions: a CLIENT span around every
 * outgoing call, whose W3C trace context travels in the request metadata, and a SERVER span,
 * child of the caller's, around every handler, whose work (and every call it makes, even after
 * awaits) runs inside it.
 *
 *   client: clientSpan(target, path, (carrier) => call with carrier copied into the Metadata)
 *           startClientSpan(target, path) → { carrier, end(error?) } for streams
 *   server: serverSpan(path, metadata, () => handler())
 *           startServerSpan(path, metadata) → { run(fn), end(error?, code?) } for streams
 *
 * Span name `package.Service/Method`; attributes rpc.system, rpc.service, rpc.method,
 * rpc.grpc.status_code, server.address/server.port (client). A client span is an error for every
 * status but OK; a server span only for the statuses that mean the server failed (UNKNOWN,
 * DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
 *
 * While tracing is off every function here only runs what it wraps, with an empty carrier.
 */
import { ConnectError } from "@connectrpc/connect";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { ATTR_ERROR_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from "@opentelemetry/semantic-conventions";
import { GRPC_CODE_NAMES } from "./metrics-labels.js";
import { extractTraceContext, injectTraceContext, type TraceCarrier, type TraceCarrierSource } from "./trace-propagation.js";
import { contextForService, serviceOf, tracerIn } from "./trace-runtime.js";

export type { TraceCarrier, TraceCarrierSource } from "./trace-propagation.js";

export const ATTR_RPC_SYSTEM = "rpc.system";
export const ATTR_RPC_SERVICE = "rpc.service";
export const ATTR_RPC_METHOD = "rpc.method";
export const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";

/** gRPC status codes (the numbers grpc-js and Connect's Code share). */
const OK = 0;
const UNKNOWN = 2;
const STATUS_NAMES = GRPC_CODE_NAMES;
/** The statuses that make a server span an error: the server, not the request, failed. */
const SERVER_ERROR_CODES: ReadonlySet<number> = new Set([2, 4, 12, 13, 14, 15]);

export interface RpcSpanOptions {
  /** The service the span belongs to; default: the active context's, else the process default. */
  readonly service?: string;
  /** `rpc.system`; default "grpc" (the gateway's Connect handlers may say "connect_rpc"). */
  readonly system?: string;
  /** More attributes for the span. */
  readonly attributes?: Attributes;
}

/** A started client span: copy `carrier` into the request metadata, then call `end` once. */
export interface ClientSpan {
  /** `traceparent` (and `tracestate`) for the request metadata; empty while tracing is off. */
  readonly carrier: TraceCarrier;
  /** The context holding the span. */
  readonly context: Context;
  /** Ends the span: without an error the call succeeded (OK), else its status code is recorded. */
  end(error?: unknown, code?: number): void;
}

/** A started server span: run the handler in it with `run`, then call `end` once. */
export interface ServerSpan {
  /** The context holding the span (and the service name). */
  readonly context: Context;
  /** Runs `fn` inside the span's context; what it starts, even after awaits, is a child. */
  run<T>(fn: () => T): T;
  /**
   * Ends the span. No argument: the call succeeded (OK). Otherwise `error` is what failed (an
   * ConnectError, a grpc-js StatusObject or ServiceError, any Error) and `code` the
   * status sent when it is not `error.code`.
   */
  end(error?: unknown, code?: number): void;
}

const EMPTY_CARRIER: TraceCarrier = Object.freeze({}) as TraceCarrier;

/**
 * Runs an outgoing call in a CLIENT span. `fn` gets the carrier to copy into the call's metadata
 * and runs inside the span's context; the span ends when the returned promise settles, with the
 * call's status code (the `code` of the rejection, UNKNOWN for an error without one).
 */
export async function clientSpan<T>(
  target: string,
  path: string,
  fn: (carrier: TraceCarrier) => Promise<T>,
  options?: RpcSpanOptions,
): Promise<T> {
  const span = startClientSpan(target, path, options);
  if (span === NOOP_CLIENT_SPAN) {
    return fn(EMPTY_CARRIER);
  }
  try {
    const result = await context.with(span.context, fn, undefined, span.carrier);
    span.end();
    return result;
  } catch (err) {
    span.end(err);
    throw err;
  }
}

/** Starts a CLIENT span for a call whose end the caller reports (streams). */
export function startClientSpan(target: string, path: string, options?: RpcSpanOptions): ClientSpan {
  const parent = context.active();
  const found = tracerIn(parent, options?.service);
  if (found === undefined) {
    return NOOP_CLIENT_SPAN;
  }
  const attributes =
    options?.system === undefined && options?.attributes === undefined
      ? clientAttributesOf(target, path)
      : { ...clientAttributesOf(target, path), [ATTR_RPC_SYSTEM]: options.system ?? "grpc", ...options.attributes };
  const span = found.tracer.startSpan(namesOf(path).spanName, { kind: SpanKind.CLIENT, attributes }, parent);
  const serviceContext = serviceOf(parent) === found.service ? parent : contextForService(parent, found.service);
  const spanContext = trace.setSpan(serviceContext, span);
  const carrier: TraceCarrier = {};
  injectTraceContext(spanContext, carrier);
  return { carrier, context: spanContext, end: once((error, code) => finish(span, error, code, "client")) };
}

/** Span name, `rpc.service` and `rpc.method` of a method path, worked out once per path. */
interface PathNames {
  readonly spanName: string;
  readonly service: string;
  readonly method: string;
}

/** How many paths' (and targets') derived values are kept; the platform has far fewer. */
const MAX_CACHED = 1_000;
const pathNames = new Map<string, PathNames>();
const clientAttributes = new Map<string, Attributes>();
const serverAttributes = new Map<string, Attributes>();

function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(key, value);
  }
  return value;
}

function namesOf(path: string): PathNames {
  return cached(pathNames, path, () => ({ spanName: spanName(path), ...splitPath(path) }));
}

/**
 * The attributes a client span of `path` to `target` starts with. Shared by every such span: the
 * SDK copies attributes into the span, so the object is only read.
 */
function clientAttributesOf(target: string, path: string): Attributes {
  return cached(clientAttributes, `${target} ${path}`, () => {
    const { service, method } = namesOf(path);
    const { address, port } = serverAddressOf(target);
    return Object.freeze({
      [ATTR_RPC_SYSTEM]: "grpc",
      [ATTR_RPC_SERVICE]: service,
      [ATTR_RPC_METHOD]: method,
      ...(address === undefined ? {} : { [ATTR_SERVER_ADDRESS]: address }),
      ...(port === undefined ? {} : { [ATTR_SERVER_PORT]: port }),
    });
  });
}

/** The attributes a server span of `path` starts with (shared, as for client spans). */
function serverAttributesOf(path: string): Attributes {
  return cached(serverAttributes, path, () => {
    const { service, method } = namesOf(path);
    return Object.freeze({ [ATTR_RPC_SYSTEM]: "grpc", [ATTR_RPC_SERVICE]: service, [ATTR_RPC_METHOD]: method });
  });
}

/**
 * Runs a handler in a SERVER span whose parent is the trace context in the request metadata (a
 * new trace when there is none). `fn` runs inside the span's context, so calls it makes, even
 * after awaits, are children. The span ends when the promise settles; a rejection without a
 * `code` is recorded as UNKNOWN.
 */
export async function serverSpan<T>(
  path: string,
  metadata: TraceCarrierSource | undefined,
  fn: () => Promise<T>,
  options?: RpcSpanOptions,
): Promise<T> {
  const span = startServerSpan(path, metadata, options);
  if (span === NOOP_SERVER_SPAN) {
    return fn();
  }
  try {
    const result = await span.run(fn);
    span.end();
    return result;
  } catch (err) {
    span.end(err);
    throw err;
  }
}

/** Starts a SERVER span for a call whose end the caller reports (streams, the gRPC binding). */
export function startServerSpan(path: string, metadata: TraceCarrierSource | undefined, options?: RpcSpanOptions): ServerSpan {
  // Only the caller's trace context counts, not whatever context the transport's callback has.
  const probe = tracerIn(ROOT_CONTEXT, options?.service);
  if (probe === undefined) {
    return NOOP_SERVER_SPAN;
  }
  const parent = contextForService(extractTraceContext(metadata), probe.service);
  const attributes =
    options?.system === undefined && options?.attributes === undefined
      ? serverAttributesOf(path)
      : { ...serverAttributesOf(path), [ATTR_RPC_SYSTEM]: options.system ?? "grpc", ...options.attributes };
  const span = probe.tracer.startSpan(namesOf(path).spanName, { kind: SpanKind.SERVER, attributes }, parent);
  const spanContext = trace.setSpan(parent, span);
  return {
    context: spanContext,
    run: (fn) => context.with(spanContext, fn),
    end: once((error, code) => finish(span, error, code, "server")),
  };
}

const NOOP_CLIENT_SPAN: ClientSpan = Object.freeze({
  carrier: EMPTY_CARRIER,
  get context() {
    return context.active();
  },
  end: () => undefined,
});

const NOOP_SERVER_SPAN: ServerSpan = Object.freeze({
  get context() {
    return context.active();
  },
  run: <T>(fn: () => T): T => fn(),
  end: () => undefined,
});

/**
 * The gRPC status code of a failure: its numeric `code` when it is a status code (ConnectError,
 * grpc-js ServiceError and StatusObject), else UNKNOWN.
 */
export function grpcStatusCodeOf(error: unknown): number {
  if (typeof error === "object" && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "number" && Number.isInteger(code) && code >= 0 && code < STATUS_NAMES.length) {
      return code;
    }
  }
  return UNKNOWN;
}

function finish(span: Span, error: unknown, code: number | undefined, side: "client" | "server"): void {
  const status = code ?? (error === undefined ? OK : grpcStatusCodeOf(error));
  span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, status);
  const failed = side === "client" ? status !== OK : SERVER_ERROR_CODES.has(status);
  if (failed) {
    const name = STATUS_NAMES[status] ?? `CODE_${status}`;
    span.setAttribute(ATTR_ERROR_TYPE, name);
    span.setStatus({ code: SpanStatusCode.ERROR, message: `${name}: ${messageOf(error)}` });
    if (error instanceof Error) {
      span.recordException(error);
    }
  }
  span.end();
}

function messageOf(error: unknown): string {
  if (error instanceof ConnectError) {
    return error.rawMessage;
  }
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === "object" && error !== null) {
    const details = (error as { details?: unknown }).details; // grpc-js StatusObject
    if (typeof details === "string") {
      return details;
    }
  }
  return error === undefined ? "" : String(error);
}

function once(fn: (error?: unknown, code?: number) => void): (error?: unknown, code?: number) => void {
  let done = false;
  return (error, code) => {
    if (!done) {
      done = true;
      fn(error, code);
    }
  };
}

/** `/package.Service/Method` → `package.Service/Method`. */
function spanName(path: string): string {
  return path.startsWith("/") ? path.slice(1) : path;
}

function splitPath(path: string): { service: string; method: string } {
  const name = spanName(path);
  const slash = name.lastIndexOf("/");
  return slash < 0 ? { service: name, method: "" } : { service: name.slice(0, slash), method: name.slice(slash + 1) };
}

/**
 * Host and port of a grpc-js target: `host:port`, `[::1]:50051`, `dns:///host:port`,
 * `dns://resolver/host:port`, `ipv4:1.2.3.4:50051`, `unix:/path` (address only).
 */
export function serverAddressOf(target: string): { address: string | undefined; port: number | undefined } {
  let rest = target.trim();
  if (rest.startsWith("unix:")) {
    return { address: rest.slice("unix:".length).replace(/^\/\/\//, "/"), port: undefined };
  }
  const scheme = /^(dns|ipv4|ipv6|passthrough|xds):/.exec(rest);
  if (scheme) {
    rest = rest.slice(scheme[0].length);
    if (rest.startsWith("//")) {
      const slash = rest.indexOf("/", 2);
      rest = slash < 0 ? "" : rest.slice(slash + 1);
    }
    rest = rest.split(",")[0] ?? ""; // ipv4:a:1,b:2 lists several addresses
  }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed) {
    return { address: bracketed[1], port: portOf(bracketed[2]) };
  }
  const colon = rest.lastIndexOf(":");
  if (colon > 0 && rest.indexOf(":") === colon) {
    return { address: rest.slice(0, colon), port: portOf(rest.slice(colon + 1)) };
  }
  return { address: rest === "" ? undefined : rest, port: undefined };
}

function portOf(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) {
    return undefined;
  }
  const port = Number(text);
  return port > 0 && port < 65536 ? port : undefined;
}
