/**
 * What the gateway's tests ask and check over the wire: a REST call with plain fetch, the field
 * paths of a 400's `google.rpc.BadRequest`, and the Connect error a call failed with.
 */
import { ConnectError } from "@connectrpc/connect";

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface RestCallOptions {
  readonly token?: string;
  /** Sent as JSON; a string is sent as it is (to send bodies that are not JSON). */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** `method path` against `baseUrl`: the status, the headers and the JSON body (if any). */
export async function restCall(baseUrl: string, method: string, path: string, options: RestCallOptions = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : undefined) as Json };
}

/** The field paths of an error body's `google.rpc.BadRequest` details, sorted. */
export function badRequestFields(body: Json): string[] {
  return (body.details ?? [])
    .filter((d: Json) => d.type === "google.rpc.BadRequest")
    .flatMap((d: Json) => d.fieldViolations.map((v: Json) => v.field))
    .sort();
}

/** The Connect error `promise` failed with; throws when it succeeded. */
export async function connectError(promise: Promise<unknown>): Promise<ConnectError> {
  return promise.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: unknown) => ConnectError.from(e),
  );
}
