/**
 * What the gateway reports about the requests it serves: a server span per RPC (Connect, gRPC,
 * gRPC-Web) and per REST call, continued by every internal call it makes, and the HTTP request
 * metrics of both ports.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ConnectError } from "@connectrpc/connect";
import { isSpanContextValid, trace } from "@opentelemetry/api";
import { recordHttpRequest } from "../lib/observability/metrics.js";
import { startServerSpan, type ServerSpan } from "../lib/observability/trace-grpc.js";

const SERVICE = "gateway";

/** The response header naming the trace of a request, for support and for the request log. */
export const TRACE_ID_HEADER = "x-trace-id";

/** The trace id of a started server span; undefined while tracing is off. */
export function traceIdOf(span: ServerSpan): string | undefined {
  const spanContext = trace.getSpanContext(span.context);
  return spanContext !== undefined && isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** A server span around every RPC; for a stream, until its last message. */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const span = startServerSpan(`/${req.service.typeName}/${req.method.name}`, req.header, {
      service: SERVICE,
      system: "connect_rpc",
    });
    const traceId = traceIdOf(span);
    try {
      const res = await span.run(() => next(req));
      if (traceId) res.header.set(TRACE_ID_HEADER, traceId);
      if (!res.stream) {
        span.end();
        return res;
      }
      return { ...res, message: tracedStream(res.message, span) };
    } catch (err) {
      span.end(err);
      if (traceId && err instanceof ConnectError) err.metadata.set(TRACE_ID_HEADER, traceId);
      throw err;
    }
  };
}

async function* tracedStream<T>(messages: AsyncIterable<T>, span: ServerSpan): AsyncGenerator<T> {
  const iterator = messages[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const next = await span.run(() => iterator.next());
      if (next.done === true) break;
      yield next.value;
    }
    done = true;
    span.end();
  } catch (err) {
    done = true;
    span.end(err);
    throw err;
  } finally {
    span.end(); // the client went away: not an error of the handler
    if (!done) await iterator.return?.();
  }
}

export type RouteKind = "rest" | "connect" | "grpc-web" | "grpc" | "other";

/** The protocol of a request, by its path and content type. */
export function routeKindOf(req: IncomingMessage, restPrefixes: readonly string[]): RouteKind {
  const url = req.url ?? "";
  if (restPrefixes.some((prefix) => url.startsWith(prefix))) return "rest";
  const type = req.headers["content-type"] ?? "";
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  if (url.startsWith("/dronedelivery.")) return "connect";
  return "other";
}

/**
 * Records every request's kind, method, status and duration once its response is done, and logs
 * one line for it: debug, or warn when the gateway failed it (5xx). The line names the path
 * without its query; headers (the bearer token) and bodies are never logged.
 */
export function withRequestMetrics(
  restPrefixes: readonly string[],
  next: (req: IncomingMessage, res: ServerResponse) => void,
  log?: Logger,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now();
    const kind = routeKindOf(req, restPrefixes);
    res.once("close", () => {
      const seconds = (performance.now() - started) / 1000;
      recordHttpRequest(kind, req.method ?? "GET", res.statusCode, seconds);
      // The line is made only when it is written: 5xx always, the rest at debug.
      if (!log || (res.statusCode < 500 && !log.isLevelEnabled("debug"))) return;
      const line = {
        kind,
        method: req.method,
        path: (req.url ?? "").split("?")[0],
        status: res.statusCode,
        grpcStatus: res.getHeader("grpc-status"),
        trace_id: res.getHeader(TRACE_ID_HEADER),
        ms: Math.round(seconds * 1000),
      };
      if (res.statusCode >= 500) log.warn(line, "request failed");
      else log.debug(line, "request");
    });
    next(req, res);
  };
}
