/**
 * Reading a REST request (headers as a Headers object, a size-limited JSON body) and writing a
 * JSON response.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { badRequest } from "./bad-request.js";

/** The largest request body accepted by default, like the services' message limit. */
export const MAX_BODY_BYTES = 1024 * 1024;

const PAYLOAD_TOO_LARGE = Symbol("payload too large");

/** A body larger than the limit: RESOURCE_EXHAUSTED, answered on REST as 413. */
export function payloadTooLarge(maxBytes: number): ConnectError {
  return Object.assign(new ConnectError(`the request body exceeds ${maxBytes} bytes`, Code.ResourceExhausted), {
    [PAYLOAD_TOO_LARGE]: true,
  });
}

/**
 * True for the error of payloadTooLarge. (A subclass would not do: ConnectError's `instanceof`
 * accepts any ConnectError, so it cannot tell subclasses apart.)
 */
export function isPayloadTooLarge(error: unknown): boolean {
  return typeof error === "object" && error !== null && PAYLOAD_TOO_LARGE in error;
}

export function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/** The parsed JSON body, or undefined when there is none. */
export async function readJsonBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<JsonValue | undefined> {
  // An HTTP/1.1 request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112
  // 6.3), nor has one that declares a length of 0: nothing to wait for.
  const length = req.headers["content-length"];
  if (req.httpVersionMajor === 1 && req.headers["transfer-encoding"] === undefined && (length === undefined || length === "0")) {
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw payloadTooLarge(maxBytes);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw badRequest([{ field: "", description: `the body is not valid JSON: ${(error as Error).message}` }]);
  }
}

export function writeJson(res: ServerResponse, status: number, body: JsonValue, headers: Record<string, string> = {}): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}
