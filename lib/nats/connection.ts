/**
 * Connecting to NATS with the platform's defaults, as an identity (its credentials from the
 * environment, see auth.ts), and closing gracefully.
 */
import { connect, type ConnectionOptions, type NatsConnection } from "nats";
import type { Env } from "../service/config.js";
import { natsCredentialsFromEnv } from "./auth.js";
// Every connection of the platform settles its requests without a stack trace per reply.
import "./cheap-cancel.js";

/** Used when neither the caller nor the environment (NATS_URL) names a server. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

export interface ConnectNatsOptions extends Omit<ConnectionOptions, "servers" | "name"> {
  /**
   * Server URL(s): one URL, a comma-separated list, or an array. Default: the NATS_URL
   * environment variable, else nats://127.0.0.1:4222.
   */
  url?: string | readonly string[];
  /** Connection name shown by the server (monitoring, logs): the service name. */
  name: string;
}

function serverList(url: string | readonly string[] | undefined): string[] {
  const raw = url ?? process.env["NATS_URL"] ?? DEFAULT_NATS_URL;
  const list = (typeof raw === "string" ? raw.split(",") : [...raw]).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new Error("connectNats: no NATS server URL given");
  return list;
}

/**
 * Opens a connection with defaults suited to a long-running service: it reconnects forever
 * (`maxReconnectAttempts: -1`) waiting 1 s (plus up to 0.5 s jitter) between attempts, detects a
 * dead server within about 30 s (ping every 10 s, 3 missed), and gives up on the first connect
 * after 5 s. Requests (JetStream publishes with ack, KV reads and writes) do not capture a stack
 * trace up front for a time-out that rarely comes (`noAsyncTraces`): the errors keep their message
 * and code, and every request costs two Error objects less. Any nats.js ConnectionOptions given
 * override these.
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const { url, name, ...rest } = options;
  return connect({
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    reconnectJitter: 500,
    pingInterval: 10_000,
    maxPingOut: 3,
    timeout: 5_000,
    noAsyncTraces: true,
    ...rest,
    servers: serverList(url),
    name,
  });
}

export interface ConnectNatsAsOptions extends Omit<ConnectNatsOptions, "name"> {
  /** Connection name; default the identity. */
  name?: string;
}

/**
 * connectNats as `identity` ("delivery", "admin", ...): the user, password and inbox prefix come
 * from natsCredentialsFromEnv(env, identity) (nothing when NATS_AUTH is off or no credentials are
 * found), the URL from `options.url`, else NATS_URL in `env`, else the default. Options given
 * override the credentials found.
 */
export async function connectNatsAs(identity: string, env: Env = process.env, options: ConnectNatsAsOptions = {}): Promise<NatsConnection> {
  const { name, url, ...rest } = options;
  const envUrl = env["NATS_URL"]?.trim();
  return connectNats({
    ...natsCredentialsFromEnv(env, identity),
    ...rest,
    name: name ?? identity,
    ...(url !== undefined ? { url } : envUrl ? { url: envUrl } : {}),
  });
}

/**
 * Graceful shutdown: drains the connection (pending subscriptions finish, buffered publishes are
 * flushed), falling back to close() if draining fails or takes longer than `timeoutMs`
 * (default 5000). Never throws; safe to call on a connection that is already closed or draining.
 */
export async function drainQuietly(nc: NatsConnection | undefined, timeoutMs = 5_000): Promise<void> {
  if (!nc || nc.isClosed()) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    const drained = (nc.isDraining() ? nc.closed() : nc.drain()).then(
      () => "drained" as const,
      () => "failed" as const,
    );
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    if ((await Promise.race([drained, timedOut])) !== "drained") await nc.close();
  } catch {
    try {
      await nc.close();
    } catch {
      // Already closed.
    }
  } finally {
    clearTimeout(timer);
  }
}
