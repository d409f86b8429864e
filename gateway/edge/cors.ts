/**
 * CORS for browser clients: only configured origins get the `Access-Control-*` headers, with the
 * headers and methods the Connect, gRPC-Web and REST protocols need. Preflights are answered here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { cors } from "@connectrpc/connect";
import { CANARY_HEADER } from "../../lib/comms/routing.js";

/**
 * Headers REST clients send or read beyond those of the Connect protocols; `x-canary` routes a
 * caller's requests to the second version of a service (lib/comms/routing.ts).
 */
const REST_REQUEST_HEADERS = ["Authorization", "Idempotency-Key", "Last-Event-ID", CANARY_HEADER];
const REST_RESPONSE_HEADERS = ["Location", "Retry-After", "X-Trace-Id"];

const ALLOWED_METHODS = [...new Set([...cors.allowedMethods, "GET", "POST", "PATCH", "PUT", "DELETE"])].join(", ");
const ALLOWED_HEADERS = [...cors.allowedHeaders, ...REST_REQUEST_HEADERS].join(", ");
const EXPOSED_HEADERS = [...cors.exposedHeaders, ...REST_RESPONSE_HEADERS].join(", ");
const PREFLIGHT_MAX_AGE_SECONDS = "7200";

export interface CorsPolicy {
  /** Allowed origins, e.g. `https://app.example.com`; `*` allows any. Empty: no CORS headers. */
  readonly origins: readonly string[];
}

function allowedOrigin(policy: CorsPolicy, origin: string | undefined): string | undefined {
  if (origin === undefined || policy.origins.length === 0) return undefined;
  if (policy.origins.includes("*")) return "*";
  return policy.origins.includes(origin) ? origin : undefined;
}

/**
 * Adds the CORS headers a request's origin is entitled to. Returns true when the request was a
 * preflight and has been answered.
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, policy: CorsPolicy): boolean {
  if (policy.origins.length === 0) return false;
  const origin = allowedOrigin(policy, req.headers.origin);
  res.setHeader("vary", "Origin");
  const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
  if (origin !== undefined) {
    res.setHeader("access-control-allow-origin", origin);
    if (preflight) {
      res.setHeader("access-control-allow-methods", ALLOWED_METHODS);
      res.setHeader("access-control-allow-headers", ALLOWED_HEADERS);
      res.setHeader("access-control-max-age", PREFLIGHT_MAX_AGE_SECONDS);
    } else {
      res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    }
  }
  if (!preflight) return false;
  // A refused origin gets a 204 without Allow-* headers: the browser blocks the request.
  res.statusCode = 204;
  res.end();
  return true;
}
