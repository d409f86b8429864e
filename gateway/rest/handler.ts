/**
 * The REST endpoint: routes a request by the `google.api.http` rules, authenticates it like the
 * RPC interceptor does, transcodes it and calls the same handler implementation the Connect
 * router serves, then answers JSON (or Server-Sent Events for server-streaming methods).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescService, JsonValue, Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { startServerSpan } from "../../lib/observability/trace-grpc.js";
import { TRACE_ID_HEADER, traceIdOf } from "../observability.js";
import { errorResponse } from "./error-body.js";
import { headersOf, readJsonBody, writeJson } from "./request-io.js";
import { matchRoute, restRoutes, type RestRoute } from "./routes.js";
import { eventId, RESUME_FIELD, startEventStream, writeErrorEvent, writeEvent } from "./sse.js";
import { buildRequest, responseJson, responseMessage } from "./transcode.js";

/** A success answer other than 200, e.g. 202 with a Location header. */
export interface RestSuccess {
  readonly status: number;
  readonly headers?: Record<string, string>;
}

export interface RestOptions<Caller = string> {
  readonly service: DescService;
  readonly implementation: ServiceImpl<DescService>;
  /** The caller (account, roles) of a request's credentials (or a promise of it); throws Unauthenticated otherwise. */
  readonly authenticate: (headers: Headers) => Caller | Promise<Caller>;
  /** Stores the authenticated caller where the handlers read it. */
  readonly setAccount: (ctx: HandlerContext, caller: Caller) => void;
  /** Largest request body accepted, in bytes; default MAX_BODY_BYTES. */
  readonly maxBodyBytes?: number;
  /** Success answers other than 200, by method name (e.g. `ScheduleDelivery`) and response JSON. */
  readonly successOf?: (methodName: string, body: JsonValue) => RestSuccess | undefined;
}

export type RestHandler = (req: IncomingMessage, res: ServerResponse) => void;

type AnyImpl = (request: Message, ctx: HandlerContext) => unknown;

/** Why a call's signal ends after its answer was sent: one shared value, not an error per call. */
const CALL_ENDED = new ConnectError("the call has ended", Code.Canceled);

/** A caller's timeout from the `Connect-Timeout-Ms` header, as the Connect protocol sends it. */
function timeoutOf(headers: Headers): number | undefined {
  const value = headers.get("connect-timeout-ms");
  return value !== null && /^\d{1,10}$/.test(value) ? Number(value) : undefined;
}

/** `Last-Event-ID` as the resume field when the query sets none. */
function withResume(route: RestRoute, headers: Headers, query: URLSearchParams): URLSearchParams {
  const last = headers.get("last-event-id");
  const resumable = route.method.input.fields.some((f) => f.name === RESUME_FIELD);
  if (last === null || !resumable || query.has(RESUME_FIELD) || query.has("afterSequence")) return query;
  const withLast = new URLSearchParams(query);
  withLast.set(RESUME_FIELD, last);
  return withLast;
}

/** A handler context and the way to end its signal. */
type RestContext = HandlerContext & { abort(reason?: unknown): void };

/**
 * The context a REST call's handler runs with. Without a caller's timeout (the usual REST call)
 * it is made directly: the request headers as they are (createHandlerContext copies them into
 * new Headers) and one AbortController; with one, createHandlerContext adds the deadline signal.
 */
function restContext(service: DescService, route: RestRoute, url: URL, headers: Headers): RestContext {
  const timeoutMs = timeoutOf(headers);
  const init = {
    service,
    method: route.method,
    protocolName: "rest",
    requestMethod: route.httpMethod,
    url: url.toString(),
    requestHeader: headers,
    contextValues: createContextValues(),
  };
  if (timeoutMs !== undefined) return createHandlerContext({ ...init, timeoutMs });
  const controller = new AbortController();
  return {
    service,
    method: route.method,
    protocolName: init.protocolName,
    requestMethod: init.requestMethod,
    url: init.url,
    requestHeader: headers,
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    signal: controller.signal,
    timeoutMs: () => undefined,
    values: init.contextValues,
    abort: (reason?: unknown) => controller.abort(reason),
  };
}

export function restHandler<Caller = string>(options: RestOptions<Caller>): RestHandler {
  const routes = restRoutes(options.service);

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://gateway");
    const found = matchRoute(routes, (req.method ?? "GET").toUpperCase(), url.pathname);
    if (found.kind === "none") {
      throw new ConnectError(`no route for ${url.pathname}`, Code.NotFound);
    }
    if (found.kind === "wrong-method") {
      // Connect has no code of its own for this: `unimplemented`, with the HTTP status that fits.
      const { body } = errorResponse(new ConnectError(`${req.method} is not allowed on ${url.pathname}`, Code.Unimplemented));
      writeJson(res, 405, body, { allow: found.allow.join(", ") });
      return;
    }
    const { route, variables } = found;
    const headers = headersOf(req);
    // One server span per REST call, continued by every internal call it makes.
    const span = startServerSpan(`/${options.service.typeName}/${route.method.name}`, headers, {
      service: "gateway",
      system: "http",
      attributes: { "http.request.method": route.httpMethod },
    });
    const traceId = traceIdOf(span);
    if (traceId) res.setHeader(TRACE_ID_HEADER, traceId);
    try {
      await span.run(() => serveRoute(req, res, url, route, variables, headers));
      span.end();
    } catch (error) {
      span.end(error);
      throw error;
    }
  }

  async function serveRoute(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    route: RestRoute,
    variables: Map<string, string>,
    headers: Headers,
  ): Promise<void> {
    const checked = options.authenticate(headers);
    const account = checked instanceof Promise ? await (checked as Promise<Caller>) : (checked as Caller);
    const body = await readJsonBody(req, options.maxBodyBytes);
    const streaming = route.method.methodKind === "server_streaming";
    const query = streaming ? withResume(route, headers, url.searchParams) : url.searchParams;
    const request = buildRequest(route, { variables, query, body });

    const ctx = restContext(options.service, route, url, headers);
    options.setAccount(ctx, account);
    // Ends the call's signal (and its deadline timer) when the connection closes; an error is made
    // only when the answer did not get out.
    res.once("close", () => ctx.abort(res.writableFinished ? CALL_ENDED : new ConnectError("the client went away", Code.Canceled)));

    const impl = (options.implementation as unknown as Record<string, AnyImpl>)[route.method.localName];
    if (!impl) throw new ConnectError(`${route.method.name} is not implemented`, Code.Unimplemented);
    if (streaming) {
      await streamEvents(res, route, impl(request, ctx) as AsyncIterable<unknown>);
      return;
    }
    if (route.method.methodKind !== "unary") {
      throw new ConnectError(`${route.method.name} streams requests, which REST cannot carry`, Code.Unimplemented);
    }
    const answer = responseMessage(route, await impl(request, ctx));
    const json = responseJson(route, answer);
    const success = options.successOf?.(route.method.name, json);
    writeJson(res, success?.status ?? 200, json, success?.headers);
  }

  return (req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        if (!res.writableEnded) {
          writeErrorEvent(res, error);
          res.end();
        }
        return;
      }
      const { status, body } = errorResponse(error);
      writeJson(res, status, body);
    });
  };
}

async function streamEvents(res: ServerResponse, route: RestRoute, updates: AsyncIterable<unknown>): Promise<void> {
  const iterator = updates[Symbol.asyncIterator]();
  let stopKeepAlive = () => {};
  try {
    // The first update (or the end) decides the status: an early failure is a plain JSON error.
    let next = await iterator.next();
    stopKeepAlive = startEventStream(res);
    while (!next.done) {
      const message = responseMessage(route, next.value);
      writeEvent(res, responseJson(route, message), eventId(message));
      if (res.destroyed) return;
      next = await iterator.next();
    }
    res.end();
  } finally {
    stopKeepAlive();
    await iterator.return?.();
  }
}
