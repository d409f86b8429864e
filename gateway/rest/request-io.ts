/**
 * Reading a REST request (headers as a Headers object, a size-limited JSON body) and writing a
 * JSON response.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { badRequest } from "./bad-request.js";

/** The largest request body accepted, like the services' message limit. */
export const MAX_BODY_BYTES = 1024 * 1024;

export function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/** The parsed JSON body, or undefined when there is none. */
export async function readJsonBody(req: IncomingMessage): Promise<JsonValue | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new ConnectError(`the body exceeds ${MAX_BODY_BYTES} bytes`, Code.ResourceExhausted);
    }
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
