/**
 * The request body size limit, checked on the declared `Content-Length` before any byte is read.
 * Bodies sent without a length are counted as they are read (REST: rest/request-io.ts; Connect:
 * the router's `readMaxBytes`) and refused the same way.
 */
import type { IncomingMessage } from "node:http";
import { Code } from "@connectrpc/connect";
import type { Refusal } from "./reject.js";

export function tooLarge(maxBytes: number): Refusal {
  return { httpStatus: 413, code: Code.ResourceExhausted, message: `the request body exceeds ${maxBytes} bytes` };
}

/** The refusal for a request whose declared body is larger than `maxBytes`, if it is. */
export function checkDeclaredLength(req: IncomingMessage, maxBytes: number): Refusal | undefined {
  const declared = req.headers["content-length"];
  if (declared === undefined || !/^\d+$/.test(declared)) return undefined;
  return Number(declared) > maxBytes ? tooLarge(maxBytes) : undefined;
}
