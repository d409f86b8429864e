/**
 * Serves the process's metrics registry for Prometheus: `GET /metrics` (and HEAD) answers the text
 * exposition with the registry's content type, any other path 404, another method on /metrics 405.
 *
 *   const server = await startMetricsServer({ host: "0.0.0.0", port: 9464 });
 *   ...
 *   await server.close();
 *
 * A process that already runs an HTTP/1.1 server (the gateway) can serve the same answer on its
 * own port with `metricsHandler` for the `/metrics` path instead.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { metricsRegistry } from "./metrics.js";

/** The path Prometheus scrapes. */
export const METRICS_PATH = "/metrics";

export type MetricsRequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A request handler answering `GET /metrics` from `registry` (default: the process's registry). */
export function createMetricsHandler(registry: Registry = metricsRegistry()): MetricsRequestHandler {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== METRICS_PATH) {
      sendText(res, 404, `no route for ${path ?? ""}\n`);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendText(res, 405, `${req.method ?? ""} is not allowed on ${METRICS_PATH}\n`);
      return;
    }
    registry.metrics().then(
      (body) => {
        res.statusCode = 200;
        res.setHeader("content-type", registry.contentType);
        res.setHeader("cache-control", "no-store");
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (error: unknown) => {
        sendText(res, 500, `metrics could not be collected: ${error instanceof Error ? error.message : String(error)}\n`);
      },
    );
  };
}

/** Answers `GET /metrics` from the process's registry; 404 for other paths. */
export const metricsHandler: MetricsRequestHandler = createMetricsHandler();

export interface MetricsServerOptions {
  /** Bind address. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one (see `port` of the result). */
  port: number;
  /** Registry to serve. Default: the process's registry. */
  registry?: Registry;
}

export interface RunningMetricsServer {
  readonly host: string;
  /** The port listened on (the one the OS picked when 0 was asked for). */
  readonly port: number;
  /** Scrape URL, e.g. http://127.0.0.1:9464/metrics */
  readonly url: string;
  /** Stops listening and closes open connections; safe to call more than once. */
  close(): Promise<void>;
}

/** Starts a small HTTP server that answers `GET /metrics`. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<RunningMetricsServer> {
  const host = options.host ?? "127.0.0.1";
  const server = http.createServer(createMetricsHandler(options.registry ?? metricsRegistry()));
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}${METRICS_PATH}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function sendText(res: http.ServerResponse, statusCode: number, text: string): void {
  res.statusCode = statusCode;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.end(text);
}
