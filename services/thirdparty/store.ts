/**
 * The Third-party service's own data: one booking per delivery in the KV bucket
 * `thirdparty-pickups`, keyed by delivery id (a single subject token, so a valid key as it is),
 * with beside each booking the carrier's progress published so far (`progress.<deliveryId>`), and
 * the carrier simulator's leader lease.
 * Bookings are never deleted: a cancelled one stays, so the delivery cannot be booked again.
 */
import type { JetStreamClient } from "nats";
import { CarrierProgressSchema, PickupSchema, type Pickup } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { aborted } from "../../lib/grpc/errors.js";
import { openBucket } from "../../lib/nats/kv.js";
import { isRevisionConflict, ProtoKvStore, UNCHANGED, type Versioned } from "../../lib/store/proto-kv-store.js";

export const PICKUPS_BUCKET = "thirdparty-pickups";

/**
 * The carrier simulator's leader lease (carrier-simulator.ts), in the same bucket. A delivery id
 * has no '.', so no booking can have this key, and keys with a '.' are never bookings.
 */
export const SIMULATOR_LEASE_KEY = "simulator.lease";

/** Prefix of the carrier progress records: `progress.<deliveryId>`. */
export const PROGRESS_PREFIX = "progress.";

/** Whether a key of the bucket is a booking's (a delivery id), not a progress record or the lease. */
export function isBookingKey(key: string): boolean {
  return !key.includes(".");
}

/** The key of a booking's progress record. */
export function progressKey(deliveryId: string): string {
  return `${PROGRESS_PREFIX}${deliveryId}`;
}

/** The delivery id of a progress record's key, or undefined for any other key. */
export function deliveryOfProgressKey(key: string): string | undefined {
  if (!key.startsWith(PROGRESS_PREFIX)) return undefined;
  const id = key.slice(PROGRESS_PREFIX.length);
  return isBookingKey(id) && id !== "" ? id : undefined;
}

export type ProgressStore = ProtoKvStore<typeof CarrierProgressSchema>;

/** The progress records, in the bookings' bucket. */
export function progressStoreOf(store: PickupStore): ProgressStore {
  return new ProtoKvStore(store.kv, CarrierProgressSchema);
}

export type PickupStore = ProtoKvStore<typeof PickupSchema>;

export async function openPickupStore(js: JetStreamClient): Promise<PickupStore> {
  const kv = await openBucket(js, PICKUPS_BUCKET, { description: "Third-party service: carrier bookings by delivery id" });
  return new ProtoKvStore(kv, PickupSchema);
}

/**
 * Like `ProtoKvStore.mutate`, for a change that applies only to an existing booking: answers
 * undefined (and writes nothing) when there is none; otherwise writes `change`'s result only if
 * nobody wrote in between, reading again after a lost race and answering ABORTED after `attempts`.
 */
export async function updateExistingPickup(
  store: PickupStore,
  deliveryId: string,
  change: (current: Pickup) => Pickup | typeof UNCHANGED,
  attempts = 10,
): Promise<(Versioned<Pickup> & { changed: boolean }) | undefined> {
  for (let attempt = 1; ; attempt++) {
    const current = await store.get(deliveryId);
    if (!current) return undefined;
    const next = change(current.value);
    if (next === UNCHANGED) return { ...current, changed: false };
    try {
      const revision = await store.update(deliveryId, next, current.revision);
      return { value: next, revision, changed: true };
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
      if (attempt >= attempts) throw aborted(`concurrent updates to the pickup of ${deliveryId} kept conflicting; retry the call`);
    }
  }
}
