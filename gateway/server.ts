/**
 * The gateway's listeners: one HTTP/1.1 port for REST (each API version under its own path
 * prefix), Connect (JSON, binary, GET) and gRPC-Web, and one cleartext HTTP/2 (h2c) port for gRPC,
 * both served by the same Connect router. Node's h2c server cannot also speak HTTP/1.1 on one
 * port, hence two. Plain endpoints (`/healthz`, `/readyz`, `/openapi.json`) answer on both ports
 * before the edge checks (CORS, body size, rate limit), which every other request passes.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { badInputGate } from "./bad-input.js";
import { withEdge, type EdgePolicy, type NodeHandler } from "./edge/index.js";
import { withRequestMetrics } from "./observability.js";

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly grpcPort: number;
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly edge: EdgePolicy;
  /** REST endpoints on the HTTP/1.1 port, by path prefix; other paths go to the Connect router. */
  readonly rest?: readonly RestMount[];
  /** Where request lines go (debug; 5xx at warn). */
  readonly log?: Logger;
  /** Plain GET endpoints by exact path, answered without authentication or limits. */
  readonly endpoints?: Readonly<Record<string, NodeHandler>>;
  /** Plain GET endpoints by path prefix (e.g. the web console's `/console/`), answered the same way. */
  readonly prefixEndpoints?: readonly RestMount[];
}

/** A REST endpoint serving every path that starts with `prefix`, e.g. `/v1/`. */
export interface RestMount {
  readonly prefix: string;
  readonly handler: NodeHandler;
}

export interface Listeners {
  /** Base URL of the HTTP/1.1 port, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Base URL of the h2c port, e.g. http://127.0.0.1:8081 */
  readonly grpcUrl: string;
  close(): Promise<void>;
}

/** Answers 404 JSON for any path no RPC matches. */
const notFound: NodeHandler = (req, res) => {
  const path = (req.url ?? "").split("?")[0];
  res.statusCode = 404;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ code: "not_found", message: `no route for ${path}` }));
};

/** `/healthz`: the process is up. */
export const healthz: NodeHandler = (req, res) => {
  res.statusCode = 200;
  res.setHeader("content-type", "application/json");
  res.end(req.method === "HEAD" ? "" : JSON.stringify({ status: "ok" }));
};

function listen(server: http.Server | http2.Http2Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function urlOf(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Plain endpoints first, then the edge checks, then `next`. */
function front(options: ListenOptions, next: NodeHandler): NodeHandler {
  const endpoints: Readonly<Record<string, NodeHandler>> = { "/healthz": healthz, ...options.endpoints };
  const guarded = withEdge(options.edge, next);
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const endpoint = Object.hasOwn(endpoints, path)
      ? endpoints[path]
      : options.prefixEndpoints?.find((mount) => path.startsWith(mount.prefix))?.handler;
    if (endpoint && (req.method === "GET" || req.method === "HEAD")) {
      endpoint(req, res);
      return;
    }
    guarded(req, res);
  };
}

export async function startListeners(options: ListenOptions): Promise<Listeners> {
  const connect = connectNodeAdapter({
    routes: options.routes,
    interceptors: options.interceptors,
    readMaxBytes: options.edge.maxBodyBytes,
    // Undecodable requests answer INVALID_ARGUMENT, not INTERNAL (bad-input.ts).
    requestGate: badInputGate,
    fallback: notFound as NonNullable<Parameters<typeof connectNodeAdapter>[0]["fallback"]>,
  });
  const rest = options.rest ?? [];
  const http1 = front(options, (req, res) => {
    const url = req.url ?? "";
    const mount = rest.find((m) => url.startsWith(m.prefix));
    (mount ? mount.handler : connect)(req, res);
  });
  const restPrefixes = rest.map((m) => m.prefix);
  const httpServer = http.createServer(withRequestMetrics(restPrefixes, http1, options.log));
  // The compatibility API gives HTTP/2 requests the shape of HTTP/1.1 ones.
  const h2Server = http2.createServer(withRequestMetrics(restPrefixes, front(options, connect), options.log) as unknown as (
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
  ) => void);
  const sessions = new Set<http2.Http2Session>();
  h2Server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  let port: number;
  let grpcPort: number;
  try {
    port = await listen(httpServer, options.host, options.port);
    grpcPort = await listen(h2Server, options.host, options.grpcPort);
  } catch (error) {
    httpServer.close();
    h2Server.close();
    throw error;
  }

  const closeServer = (server: http.Server | http2.Http2Server) =>
    new Promise<void>((resolve) => server.close(() => resolve()));

  return {
    url: urlOf(options.host, port),
    grpcUrl: urlOf(options.host, grpcPort),
    async close() {
      const closed = Promise.all([closeServer(httpServer), closeServer(h2Server)]);
      // Open streams (WatchDelivery) would hold the servers open: end every connection.
      httpServer.closeAllConnections();
      for (const session of sessions) session.destroy();
      await closed;
    },
  };
}
