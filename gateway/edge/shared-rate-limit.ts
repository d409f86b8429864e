/**
 * The rate limit shared by every gateway instance: one allowance per client and window, counted
 * in the NATS KV bucket `gateway-rate-limit`, so that N gateways together admit at most
 * `requests` calls per client and window (not N times that).
 *
 * Windows are fixed and aligned on the epoch (window `w` covers [w, w+1) x `windowSeconds`); each
 * (client, window) has one key whose value is the number of calls reserved so far in that window
 * by all instances together. The bucket's entries expire after two windows.
 *
 * Cheap: an instance does not write the counter on every call. It reserves calls in batches with
 * one revision-checked write (`kv.update` against the revision read; a concurrent reservation by
 * another instance makes it read again and retry), then admits calls from its batch in memory.
 * The first batch of a client in a window is one call; each further batch of the same instance in
 * the window doubles (up to `MAX_BATCH`) but never exceeds a quarter of what is left of the
 * allowance, and never what is left. So the counter never passes `requests` (no call is admitted
 * beyond the allowance, whatever the number of instances), and the calls an instance reserved and
 * did not use before the window ends (which no other instance can spend) are at most about a
 * quarter of what was left when it last reserved. A client over its allowance is refused from
 * memory until its window ends, without asking NATS again.
 *
 * Fail-safe, not fail-open: while the bucket cannot be reached (no connection yet, NATS down, a
 * request timing out) each instance counts alone with the in-memory limiter (per instance, as a
 * single gateway always did), and says so in its log once per `OUTAGE_LOG_INTERVAL_MS`.
 */
import { createHash } from "node:crypto";
import type { KV, NatsConnection } from "nats";
import type { Logger } from "pino";
import { connectNatsAs, drainQuietly } from "../../lib/nats/connection.js";
import { openBucket } from "../../lib/nats/kv.js";
import { GATEWAY_IDENTITY } from "../../lib/nats/permissions.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import type { Env } from "../../lib/service/config.js";

/** The gateway instances' shared bucket of call counters. */
export const RATE_LIMIT_BUCKET = "gateway-rate-limit";

/** The largest batch of calls an instance reserves at once. */
export const MAX_BATCH = 256;

/** Reservation attempts that lose to concurrent ones before the call is counted in memory instead. */
const MAX_ATTEMPTS = 8;

/** How long the KV requests of a reservation may take before the bucket counts as unreachable. */
const KV_TIMEOUT_MS = 1_000;

/** After a failed reservation, how long the instance counts alone before asking the bucket again. */
const OUTAGE_BACKOFF_MS = 1_000;

/** At most one log line per this interval while the bucket cannot be reached. */
const OUTAGE_LOG_INTERVAL_MS = 10_000;

/**
 * Where the instances' counters live: `reserve` adds up to `want` calls to the counter of `key`
 * (never beyond `limit`, and at most a quarter of what is left unless that is less than one) and
 * answers how many it added (0: the allowance is spent). It throws when the store cannot be reached.
 */
export interface SharedCounter {
  reserve(key: string, want: number, limit: number): Promise<number>;
}

/** True when `error` says the key already exists (a create that lost to another instance). */
function isTaken(error: unknown): boolean {
  return isRevisionConflict(error) || /exists/i.test((error as Error | undefined)?.message ?? "");
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How many calls to reserve: `want`, but at most a quarter of what is left (at least one), and never beyond it. */
export function grantOf(count: number, want: number, limit: number): number {
  const left = limit - count;
  if (left <= 0) return 0;
  return Math.min(left, Math.max(1, Math.min(want, Math.floor(left / 4))));
}

/** A SharedCounter over a KV bucket: revision-checked reservations. */
export function kvCounter(kv: KV): SharedCounter {
  return {
    async reserve(key, want, limit) {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const entry = await kv.get(key);
        const count = entry && entry.operation === "PUT" ? Number(decoder.decode(entry.value)) || 0 : 0;
        const grant = grantOf(count, want, limit);
        if (grant === 0) return 0;
        const value = encoder.encode(String(count + grant));
        try {
          if (entry && entry.operation === "PUT") await kv.update(key, value, entry.revision);
          else await kv.create(key, value);
          return grant;
        } catch (error) {
          if (isTaken(error)) continue; // another instance reserved meanwhile: read again
          throw error;
        }
      }
      throw new Error(`rate-limit counter ${key}: ${MAX_ATTEMPTS} reservations in a row lost to concurrent ones`);
    },
  };
}

/** What an instance knows of one client in the current window. */
interface ClientWindow {
  window: number;
  /** Calls reserved and not used yet. */
  left: number;
  /** The next batch to ask for. */
  batch: number;
  /** The allowance of the window is spent. */
  spent: boolean;
  /** A reservation under way (calls of the client wait for it rather than each reserving). */
  pending: Promise<void> | undefined;
}

export interface SharedWindowLimiterOptions {
  readonly requests: number;
  readonly windowSeconds: number;
  /** The counters; undefined while not (yet) reachable. */
  readonly counter: () => SharedCounter | undefined;
  /** Decides a call alone, in memory: used while the counters cannot be reached. */
  readonly local: (client: string) => Promise<{ admitted: true } | { admitted: false; msBeforeNext: number }>;
  readonly now?: () => number;
  readonly log?: Logger | undefined;
}

export type Decision = { admitted: true } | { admitted: false; msBeforeNext: number };

/** Bounded map of clients seen in the current windows (a client sends many calls in a window). */
const MAX_CLIENTS = 10_000;

/**
 * The instance's side of the shared limit: admits a call from its reserved batch, else reserves
 * the next batch, else refuses until the window ends.
 */
export function sharedWindowLimiter(options: SharedWindowLimiterOptions): (client: string) => Promise<Decision> {
  const windowMs = options.windowSeconds * 1000;
  const now = options.now ?? Date.now;
  const clients = new Map<string, ClientWindow>();
  let downUntil = 0;
  let lastOutageLog = -Infinity;

  const outage = (error: unknown): void => {
    const at = now();
    downUntil = at + OUTAGE_BACKOFF_MS;
    if (at - lastOutageLog >= OUTAGE_LOG_INTERVAL_MS) {
      lastOutageLog = at;
      options.log?.warn(
        { err: error },
        "the shared rate-limit bucket cannot be reached: this gateway counts calls alone (per instance) until it can",
      );
    }
  };

  const reserve = async (state: ClientWindow, key: string, counter: SharedCounter): Promise<void> => {
    const granted = await counter.reserve(key, state.batch, options.requests);
    if (granted === 0) state.spent = true;
    else {
      state.left += granted;
      state.batch = Math.min(MAX_BATCH, state.batch * 2);
    }
  };

  return async (client) => {
    for (;;) {
      const at = now();
      const window = Math.floor(at / windowMs);
      let state = clients.get(client);
      if (!state || state.window !== window) {
        if (!state && clients.size >= MAX_CLIENTS) {
          for (const [k, v] of clients) if (v.window !== window && !v.pending) clients.delete(k);
          if (clients.size >= MAX_CLIENTS) clients.clear();
        }
        state = { window, left: 0, batch: 1, spent: false, pending: undefined };
        clients.set(client, state);
      }
      if (state.left > 0) {
        state.left--;
        return { admitted: true };
      }
      if (state.spent) return { admitted: false, msBeforeNext: (window + 1) * windowMs - at };
      const counter = at >= downUntil ? options.counter() : undefined;
      if (!counter) return options.local(client);
      if (state.pending) {
        await state.pending;
        continue; // look again: the batch may hold a call for this one too
      }
      const current = state;
      let failed = false;
      current.pending = reserve(current, `${counterKeyOf(client)}.${window}`, counter)
        .catch((error: unknown) => {
          failed = true;
          outage(error);
        })
        .finally(() => (current.pending = undefined));
      await current.pending;
      if (failed) return options.local(client);
    }
  };
}

/** A client's key in the bucket: a hash (KV keys allow few characters; no token is stored). */
export function counterKeyOf(client: string): string {
  return createHash("sha256").update(client).digest("hex").slice(0, 32);
}

export interface NatsCounterOptions {
  readonly env: Env;
  readonly windowSeconds: number;
  readonly log?: Logger | undefined;
}

export interface NatsCounter {
  /** The counter while the bucket is open and the connection up; undefined otherwise. */
  current(): SharedCounter | undefined;
  close(): Promise<void>;
}

/**
 * The counters in the gateway's NATS bucket, connecting as the `gateway` identity in the
 * background: until the bucket is open, and while the connection is down, `current()` is
 * undefined (the instance counts alone).
 */
export function natsSharedCounter(options: NatsCounterOptions): NatsCounter {
  let nc: NatsConnection | undefined;
  let counter: SharedCounter | undefined;
  let connected = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const open = async (): Promise<void> => {
    try {
      const connection = nc ?? (await connectNatsAs(GATEWAY_IDENTITY, options.env, { timeout: 2_000, name: "gateway-rate-limit" }));
      if (closed) {
        await drainQuietly(connection);
        return;
      }
      if (!nc) {
        nc = connection;
        connected = true;
        void (async () => {
          for await (const status of connection.status()) {
            if (status.type === "disconnect") {
              connected = false;
              options.log?.warn("NATS connection lost: this gateway counts calls alone (per instance) until it is back");
            } else if (status.type === "reconnect") {
              connected = true;
              options.log?.info("NATS connection back: the rate limit is shared with the other gateway instances again");
            }
          }
        })().catch(() => undefined);
      }
      const kv = await openBucket(connection.jetstream({ timeout: KV_TIMEOUT_MS }), RATE_LIMIT_BUCKET, {
        description: "Calls per client and rate-limit window, counted by every gateway instance together.",
        history: 1,
        // A window's counter is read during its window only; two windows leave room for clocks a little apart.
        ttlMs: 2 * options.windowSeconds * 1000,
      });
      counter = kvCounter(kv);
      options.log?.info({ bucket: RATE_LIMIT_BUCKET }, "rate limit shared with the other gateway instances through NATS");
    } catch (error) {
      if (closed) return;
      options.log?.warn({ err: error }, "the shared rate-limit bucket is not open yet; this gateway counts calls alone until it is");
      retry = setTimeout(() => void open(), 2_000);
    }
  };
  const opening = open();
  return {
    current: () => (connected && counter ? counter : undefined),
    async close() {
      closed = true;
      clearTimeout(retry);
      await opening;
      await drainQuietly(nc);
    },
  };
}
