/**
 * Server-streaming methods as Server-Sent Events: one `data: <json>` event per message, with
 * `id: <sequence>` when the message has a `sequence` field, so that a client reconnecting with
 * `Last-Event-ID` resumes after it. An error after the stream has started is a final
 * `event: error` carrying the REST error JSON. Quiet streams send a comment line now and then.
 */
import type { ServerResponse } from "node:http";
import type { JsonValue, Message } from "@bufbuild/protobuf";
import { EVENT_ID_FIELD, RESUME_FIELD } from "./conventions.js";
import { errorResponse } from "./error-body.js";

export { EVENT_ID_FIELD, RESUME_FIELD };

export function eventId(message: Message): string | undefined {
  const value = (message as unknown as Record<string, unknown>)[EVENT_ID_FIELD];
  return typeof value === "bigint" || typeof value === "number" ? String(value) : undefined;
}

/** How often a quiet stream sends a comment line, so that idle proxies keep it open. */
export const KEEP_ALIVE_MS = 15_000;

/** Sends the stream's headers; the returned function stops its keep-alive comments. */
export function startEventStream(res: ServerResponse): () => void {
  res.statusCode = 200;
  res.setHeader("content-type", "text/event-stream");
  res.setHeader("cache-control", "no-cache");
  res.setHeader("connection", "keep-alive");
  res.flushHeaders();
  const timer = setInterval(() => {
    if (!res.writableEnded && !res.destroyed) res.write(": keep-alive\n\n");
  }, KEEP_ALIVE_MS);
  timer.unref();
  return () => clearInterval(timer);
}

export function writeEvent(res: ServerResponse, data: JsonValue, id: string | undefined): void {
  res.write(`${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`);
}

export function writeErrorEvent(res: ServerResponse, error: unknown): void {
  res.write(`event: error\ndata: ${JSON.stringify(errorResponse(error).body)}\n\n`);
}
