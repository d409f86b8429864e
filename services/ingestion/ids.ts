/**
 * Delivery ids and deduplication ids of the commands Ingestion publishes.
 *
 * A delivery id is derived from the owner and the caller's idempotency key, so a repeated request
 * yields the same id at any time, even after the stream's deduplication window, without Ingestion
 * storing anything. It is one NATS subject token (hex digits behind a prefix).
 */
import { createHash } from "node:crypto";

function digest(...parts: string[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part).update("\u0000");
  return hash.digest("hex");
}

/** `dlv-` and 24 hex digits (96 bits) of SHA-256 over owner and key. */
export function deliveryIdFor(ownerId: string, idempotencyKey: string): string {
  return `dlv-${digest("schedule", ownerId, idempotencyKey).slice(0, 24)}`;
}

/** Nats-Msg-Id of a schedule command: one per delivery. */
export function scheduleMsgId(deliveryId: string): string {
  return `schedule:${deliveryId}`;
}

/** Nats-Msg-Id of a reschedule: the caller's key, or one derived from the change itself. */
export function rescheduleMsgId(deliveryId: string, idempotencyKey: string, change: Uint8Array): string {
  if (idempotencyKey) return `reschedule:${deliveryId}:${digest(idempotencyKey).slice(0, 32)}`;
  return `reschedule:${deliveryId}:${createHash("sha256").update(change).digest("hex").slice(0, 32)}`;
}

/** Nats-Msg-Id of a cancellation: the caller's key, or one per delivery. */
export function cancelMsgId(deliveryId: string, idempotencyKey: string): string {
  return idempotencyKey ? `cancel:${deliveryId}:${digest(idempotencyKey).slice(0, 32)}` : `cancel:${deliveryId}`;
}
