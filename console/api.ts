/**
 * The console's only way to its data: the gateway's public REST + JSON API and its Server-Sent
 * Events, called with the signed-in bearer token. A failed connection shows the offline banner
 * and starts probing `/healthz` with a growing delay; once it answers, the banner goes and every
 * `onReconnect` listener runs (the views reload and reopen their streams).
 */

const TOKEN_KEY = "dronedelivery.console.token";

/** The token from `#token=...` (kept in sessionStorage, removed from the address), else the kept one. */
export function takeToken(): string | undefined {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match?.[1]) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export interface TokenClaims {
  readonly sub: string;
  readonly roles: readonly string[];
  readonly exp?: number;
}

/**
 * The token's claims, read without checking the signature: only to decide what to show (the
 * gateway checks every call). Undefined when it is not a JWT.
 */
export function readClaims(token: string): TokenClaims | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=");
    const json = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)))) as Record<string, unknown>;
    const roles = Array.isArray(json["roles"]) ? json["roles"].filter((r): r is string => typeof r === "string") : [];
    return { sub: typeof json["sub"] === "string" ? json["sub"] : "", roles, ...(typeof json["exp"] === "number" ? { exp: json["exp"] } : {}) };
  } catch {
    return undefined;
  }
}

/** An answer of the API other than 2xx: its HTTP status and the error body's code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The gateway could not be reached. */
export class OfflineError extends Error {}

let token = "";
let offline = false;
let probing = false;
const reconnectListeners: Array<() => void> = [];
/** One-time waiters for the gateway to be back (streams waiting to reopen). */
let backWaiters: Array<() => void> = [];
const unauthorizedListeners: Array<(error: ApiError) => void> = [];

export function useToken(value: string): void {
  token = value;
}

export function onReconnect(listener: () => void): void {
  reconnectListeners.push(listener);
}

/** Called when the gateway refuses the token (401): the page signs out. */
export function onUnauthorized(listener: (error: ApiError) => void): void {
  unauthorizedListeners.push(listener);
}

export function isOffline(): boolean {
  return offline;
}

function banner(): HTMLElement | null {
  return document.getElementById("banner-offline");
}

function setOnline(): void {
  if (!offline) return;
  offline = false;
  banner()?.setAttribute("hidden", "");
  for (const listener of reconnectListeners) listener();
  const waiters = backWaiters;
  backWaiters = [];
  for (const resolve of waiters) resolve();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Shows the banner and probes /healthz (1 s, 2 s, 4 s ... at most 8 s apart) until it answers. */
export function setOffline(): void {
  if (!offline) {
    offline = true;
    banner()?.removeAttribute("hidden");
  }
  if (probing) return;
  probing = true;
  void (async () => {
    let delay = 1000;
    while (offline) {
      await sleep(delay);
      try {
        const response = await fetch("/healthz", { cache: "no-store" });
        if (response.ok) break;
      } catch {
        // still unreachable
      }
      delay = Math.min(delay * 2, 8000);
    }
    probing = false;
    setOnline();
  })();
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { code?: unknown; message?: unknown };
    if (typeof body.code === "string") code = body.code;
    if (typeof body.message === "string") message = body.message;
  } catch {
    // not JSON
  }
  return new ApiError(response.status, code, message);
}

async function send(path: string, init: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    setOffline();
    throw new OfflineError("the gateway cannot be reached");
  }
  // A gateway that answers is reachable, whatever it answers (a 503 from a proxy in front aside).
  if (response.status === 502 || response.status === 504) {
    setOffline();
    throw new OfflineError(`the gateway answers ${response.status}`);
  }
  setOnline();
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) for (const listener of unauthorizedListeners) listener(error);
    throw error;
  }
  return response;
}

/** One REST call; its JSON answer. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(path, {
    method,
    cache: "no-store",
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await response.text();
  return (text ? JSON.parse(text) : {}) as T;
}

/**
 * Follows a Server-Sent Events stream (read with fetch: EventSource cannot send the bearer
 * token) until it ends or `signal` aborts; each `data:` is parsed and passed to `onMessage`. An
 * `event: error` rejects with its ApiError; a lost connection rejects with OfflineError.
 */
export async function followEvents(path: string, onMessage: (data: unknown) => void, signal: AbortSignal): Promise<void> {
  const response = await send(path, { headers: { accept: "text/event-stream" }, cache: "no-store", signal });
  const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
  if (!reader) return;
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length === 0) continue;
        const parsed = JSON.parse(data.join("\n")) as { code?: string; message?: string };
        if (event === "error") throw new ApiError(0, parsed.code ?? "unknown", parsed.message ?? "the stream failed");
        onMessage(parsed);
      }
    }
  } catch (error) {
    if (signal.aborted || error instanceof ApiError) throw error;
    setOffline();
    throw new OfflineError("the stream was cut");
  } finally {
    reader.releaseLock();
  }
}

/**
 * Keeps a stream open: reopens it after it ends (unless `finished` says nothing more will come) or fails, 1 s later at first, up to 15 s later
 * after repeated failures (at once after the gateway is back). Stops when `signal` aborts.
 */
export function keepFollowing(
  path: () => string,
  onMessage: (data: unknown) => void,
  signal: AbortSignal,
  onError?: (error: unknown) => void,
  finished?: () => boolean,
): void {
  void (async () => {
    let delay = 1000;
    while (!signal.aborted) {
      const opened = Date.now();
      try {
        await followEvents(path(), onMessage, signal);
        // A stream that ended by itself with nothing more to come (a delivery that has ended) is not reopened.
        if (finished?.()) return;
        delay = 1000;
      } catch (error) {
        if (signal.aborted) return;
        onError?.(error);
        // A stream that lasted a while before failing starts its back-off again.
        delay = Date.now() - opened > 30_000 ? 1000 : Math.min(delay * 2, 15_000);
      }
      if (signal.aborted) return;
      if (offline) await new Promise<void>((resolve) => backWaiters.push(resolve));
      else await sleep(delay);
    }
  })();
}
