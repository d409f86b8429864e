/**
 * Answers a request the edge refuses (too large, too many) in the caller's protocol: gRPC and
 * gRPC-Web callers get a trailers-only response with the gRPC status, everyone else a JSON error
 * body `{code, message}` with the HTTP status, as REST and Connect clients expect.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code } from "@connectrpc/connect";
import { codeName } from "../rest/http-status.js";

export interface Refusal {
  readonly httpStatus: number;
  readonly code: Code;
  readonly message: string;
  readonly headers?: Record<string, string>;
}

function isGrpc(req: IncomingMessage): boolean {
  return (req.headers["content-type"] ?? "").startsWith("application/grpc");
}

export function refuse(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
  for (const [name, value] of Object.entries(refusal.headers ?? {})) res.setHeader(name, value);
  // The body is not read: close an HTTP/1.1 connection after answering so it is not drained
  // (HTTP/2 has no such header: the stream is reset instead).
  if (req.httpVersionMajor < 2) res.setHeader("connection", "close");
  if (isGrpc(req)) {
    res.statusCode = 200;
    res.setHeader("content-type", req.headers["content-type"] ?? "application/grpc");
    res.setHeader("grpc-status", String(refusal.code));
    res.setHeader("grpc-message", encodeURIComponent(refusal.message));
    res.end();
    return;
  }
  res.statusCode = refusal.httpStatus;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ code: codeName(refusal.code), message: refusal.message }));
}
