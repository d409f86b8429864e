/**
 * The key layout of the `deliveries` bucket. Four kinds of entries share it, each under its own
 * first token:
 *
 *   delivery.<deliveryId>                                  the Delivery record
 *   request.<deliveryId>                                   the ScheduleDeliveryRequest that created it
 *   owner.<ownerToken>.<invertedCreateMillis>.<deliveryId> the per-owner index (value: the delivery id)
 *   outbox.<deliveryId>                                    status events of the delivery may await publishing
 *
 * Delivery ids are single subject tokens (no '.'), so they are used as they are. Owner ids may
 * contain '.', which would split a key into more tokens, so they are written as base64url (letters,
 * digits, '-' and '_', no padding): one token, reversible, and valid in a key. The creation time
 * is inverted (`MAX - millis`, zero-padded to a fixed width) so that the ascending key order of an
 * owner's index is newest first; ties within one millisecond are ordered by delivery id.
 */
import { assertKey } from "../../lib/store/proto-kv-store.js";

/** Width of the inverted creation time: enough for every millisecond up to year 9999. */
const MILLIS_WIDTH = 15;
const MAX_MILLIS = 10 ** MILLIS_WIDTH - 1;

export function deliveryKey(deliveryId: string): string {
  return assertKey(`delivery.${deliveryId}`);
}

/** The subject filter of every Delivery record. */
export const DELIVERY_FILTER = "delivery.*";

/** The delivery id of a record key; undefined for a key of another shape. */
export function deliveryIdOfKey(key: string): string | undefined {
  return /^delivery\.([A-Za-z0-9_-]{1,128})$/.exec(key)?.[1];
}

export function requestKey(deliveryId: string): string {
  return assertKey(`request.${deliveryId}`);
}

/**
 * The outbox entry of a delivery: written before a record write that enters a stage (again by
 * every attempt of the write), removed once the events of the record are stored in
 * DELIVERY_STATUS by whoever wrote it last.
 */
export function outboxKey(deliveryId: string): string {
  return assertKey(`outbox.${deliveryId}`);
}

/** The subject filter of every outbox entry. */
export const OUTBOX_FILTER = "outbox.*";

/** The delivery id of an outbox key; undefined for a key of another shape. */
export function deliveryIdOfOutboxKey(key: string): string | undefined {
  return /^outbox\.([A-Za-z0-9_-]{1,128})$/.exec(key)?.[1];
}

/** The owner id as one key token. */
export function ownerToken(ownerId: string): string {
  return Buffer.from(ownerId, "utf8").toString("base64url");
}

/** The position of a delivery within its owner's index: `<invertedCreateMillis>.<deliveryId>`. */
export function indexPosition(createMillis: number, deliveryId: string): string {
  if (!Number.isInteger(createMillis) || createMillis < 0 || createMillis > MAX_MILLIS) {
    throw new RangeError(`creation time ${createMillis} ms cannot be indexed`);
  }
  return `${String(MAX_MILLIS - createMillis).padStart(MILLIS_WIDTH, "0")}.${deliveryId}`;
}

/** Matches an index position; group 1 is the inverted time, group 2 the delivery id. */
export const INDEX_POSITION_RE = new RegExp(`^(\\d{${MILLIS_WIDTH}})\\.([A-Za-z0-9_-]{1,128})$`);

export interface IndexPosition {
  readonly position: string;
  readonly createMillis: number;
  readonly deliveryId: string;
}

/** Reads a position back; undefined when it is not one. */
export function parsePosition(position: string): IndexPosition | undefined {
  const match = INDEX_POSITION_RE.exec(position);
  if (!match?.[1] || !match[2]) return undefined;
  return { position, createMillis: MAX_MILLIS - Number(match[1]), deliveryId: match[2] };
}

export function ownerIndexKey(ownerId: string, position: string): string {
  return assertKey(`owner.${ownerToken(ownerId)}.${position}`);
}

/** The subject filter of every index entry of one owner. */
export function ownerIndexFilter(ownerId: string): string {
  return `owner.${ownerToken(ownerId)}.>`;
}

/** The position part of an index key of `ownerId`; undefined for a key of another shape. */
export function positionOfIndexKey(ownerId: string, key: string): IndexPosition | undefined {
  const prefix = `owner.${ownerToken(ownerId)}.`;
  return key.startsWith(prefix) ? parsePosition(key.slice(prefix.length)) : undefined;
}
