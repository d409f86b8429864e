/**
 * Idempotency of a public ScheduleDelivery.
 *
 * The key is the `Idempotency-Key` header when sent, else the request's `idempotency_key` field,
 * else a random UUID minted once for this request so that every retry the gateway makes of it
 * reuses the same key.
 *
 * Ingestion derives the delivery id from owner + key, so a repeated key always names the first
 * delivery. A key reused with a different request must not be answered with that first delivery's
 * id as if it had been accepted: the gateway remembers a fingerprint (SHA-256 of the internal
 * request) per (owner, key) in its own NATS KV bucket `gateway-idempotency`, whose entries expire
 * after the command stream's deduplication window. The bucket outlives a gateway restart and is
 * shared by every gateway instance. One `create` per request: it succeeds for a new key; for a
 * known one the stored fingerprint is read and compared, and a different one is refused with
 * FAILED_PRECONDITION (REST 422) naming the key. A request Ingestion refuses (bad input, ...) gives
 * its key back, so the corrected request may use it. While NATS cannot be reached the check is
 * skipped (fail open): Ingestion, which needs NATS to accept anything, decides then.
 */
import { createHash, randomUUID } from "node:crypto";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { KV, NatsConnection } from "nats";
import type { Logger } from "pino";
import { ScheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { PreconditionFailureSchema } from "../gen/google/rpc/error_details_pb.js";
import { connectNatsAs, drainQuietly } from "../lib/nats/connection.js";
import { openBucket } from "../lib/nats/kv.js";
import { GATEWAY_IDENTITY } from "../lib/nats/permissions.js";
import { STREAMS } from "../lib/nats/streams.js";
import type { Env } from "../lib/service/config.js";
import { IDEMPOTENCY_KEY_HEADER } from "./rest/conventions.js";

export { IDEMPOTENCY_KEY_HEADER };

/** The gateway's bucket of request fingerprints. */
export const IDEMPOTENCY_BUCKET = "gateway-idempotency";

/** How long a fingerprint is kept by default: the deduplication window of the command stream. */
export const DEFAULT_IDEMPOTENCY_TTL_MS = STREAMS.DELIVERY_REQUESTS.duplicateWindowMs;

/** The precondition violation type of a reused key. */
export const KEY_REUSED = "IDEMPOTENCY_KEY_REUSED";

export interface ResolvedKey {
  readonly key: string;
  /** True when the caller chose the key (header or field), false when the gateway minted it. */
  readonly chosen: boolean;
}

export function resolveIdempotencyKey(field: string, headers: Headers): ResolvedKey {
  const header = headers.get(IDEMPOTENCY_KEY_HEADER);
  if (header !== null && header !== "") return { key: header, chosen: true };
  if (field !== "") return { key: field, chosen: true };
  return { key: randomUUID(), chosen: false };
}

/** The fingerprint of an internal schedule request: SHA-256 of its (deterministic) binary form. */
export function fingerprintOf(request: MessageInitShape<typeof ScheduleDeliveryRequestSchema>): string {
  const bytes = toBinary(ScheduleDeliveryRequestSchema, create(ScheduleDeliveryRequestSchema, request));
  return createHash("sha256").update(bytes).digest("hex");
}

const KEY_REUSED_MARK = Symbol("idempotency key reused");

/** The refusal of a key reused with a different request: FAILED_PRECONDITION, REST 422. */
export function keyReused(key: string): ConnectError {
  const description = `the Idempotency-Key "${key}" was already used with a different request; send a new key for a new request`;
  return Object.assign(
    new ConnectError(description, Code.FailedPrecondition, undefined, [
      {
        desc: PreconditionFailureSchema,
        value: create(PreconditionFailureSchema, { violations: [{ type: KEY_REUSED, subject: key, description }] }),
      },
    ]),
    { [KEY_REUSED_MARK]: true },
  );
}

/** True for the error of keyReused (REST answers it 422). */
export function isKeyReused(error: unknown): boolean {
  return typeof error === "object" && error !== null && KEY_REUSED_MARK in error;
}

/** A key claimed for a request. */
export interface Claim {
  /** Gives the key back: the request was refused, so its fingerprint must not bind the key. */
  release(): Promise<void>;
}

export interface IdempotencyStore {
  /** Claims (owner, key) for `fingerprint`; throws keyReused when it is bound to another one. */
  claim(owner: string, key: string, fingerprint: string): Promise<Claim>;
  close(): Promise<void>;
}

const nothingToRelease: Claim = { release: async () => {} };

/** No check at all (no NATS configured). */
export const uncheckedIdempotency: IdempotencyStore = {
  claim: async () => nothingToRelease,
  close: async () => {},
};

/** The KV key of (owner, key): hashed, since both may hold characters KV keys cannot. */
function entryKey(owner: string, key: string): string {
  return createHash("sha256").update(owner).update("\u0000").update(key).digest("hex");
}

/** The store over a KV bucket (tests give their own bucket). */
export function kvIdempotencyStore(kv: () => KV | undefined, log?: Logger): IdempotencyStore {
  return {
    async claim(owner, key, fingerprint) {
      const bucket = kv();
      if (!bucket) return nothingToRelease;
      const name = entryKey(owner, key);
      try {
        const revision = await bucket.create(name, fingerprint);
        return {
          async release() {
            await bucket.delete(name, { previousSeq: revision }).catch(() => {});
          },
        };
      } catch (error) {
        let stored: string | undefined;
        try {
          const entry = await bucket.get(name);
          if (entry?.operation === "PUT") stored = entry.string();
        } catch {
          // unreadable: as unreachable
        }
        if (stored === undefined) {
          log?.warn({ err: error }, "idempotency fingerprint not recorded; the check is skipped for this request");
          return nothingToRelease;
        }
        if (stored !== fingerprint) throw keyReused(key);
        return nothingToRelease; // the same request again
      }
    },
    close: async () => {},
  };
}

export interface NatsIdempotencyOptions {
  readonly env: Env;
  readonly ttlMs: number;
  readonly log?: Logger | undefined;
}

/**
 * The store over the gateway's NATS bucket, connecting as the `gateway` identity in the
 * background: the gateway does not wait for NATS to serve, and until the bucket is open the check
 * is skipped.
 */
export function natsIdempotencyStore(options: NatsIdempotencyOptions): IdempotencyStore {
  let nc: NatsConnection | undefined;
  let bucket: KV | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const open = async (): Promise<void> => {
    try {
      if (nc === undefined) {
        const connection = await connectNatsAs(GATEWAY_IDENTITY, options.env, { timeout: 2_000 });
        if (closed) {
          await drainQuietly(connection);
          return;
        }
        nc = connection;
      }
      bucket = await openBucket(nc.jetstream({ timeout: 2_000 }), IDEMPOTENCY_BUCKET, {
        description: "Fingerprints of ScheduleDelivery requests by owner and idempotency key; kept for the dedup window.",
        history: 1,
        ttlMs: options.ttlMs,
      });
    } catch (error) {
      if (closed) return;
      options.log?.warn({ err: error }, "the idempotency bucket is not open yet; reused keys are not checked until it is");
      // Try again now and then: to connect (once connected, nats.js reconnects by itself), or to
      // open the bucket over the connection (a JetStream request that timed out on a busy server).
      retry = setTimeout(() => void open(), 2_000);
    }
  };
  const opening = open();
  const store = kvIdempotencyStore(() => bucket, options.log);
  return {
    claim: store.claim,
    async close() {
      closed = true;
      clearTimeout(retry);
      await opening;
      await drainQuietly(nc);
    },
  };
}
