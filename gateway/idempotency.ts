/**
 * The idempotency key of a public ScheduleDelivery: the `Idempotency-Key` header when sent, else
 * the request's `idempotency_key` field, else a random UUID minted once for this request so that
 * every retry the gateway makes of it reuses the same key.
 */
import { randomUUID } from "node:crypto";

export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";

export function resolveIdempotencyKey(field: string, headers: Headers): string {
  const header = headers.get(IDEMPOTENCY_KEY_HEADER);
  if (header !== null && header !== "") return header;
  if (field !== "") return field;
  return randomUUID();
}
