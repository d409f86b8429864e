/**
 * The Third-party service's own data: one booking per delivery in the KV bucket
 * `thirdparty-pickups`, keyed by delivery id (a single subject token, so a valid key as it is).
 * Bookings are never deleted: a cancelled one stays, so the delivery cannot be booked again.
 */
import type { JetStreamClient } from "nats";
import { PickupSchema, type Pickup } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { aborted } from "../../lib/grpc/errors.js";
import { openBucket } from "../../lib/nats/kv.js";
import { isRevisionConflict, ProtoKvStore, UNCHANGED, type Versioned } from "../../lib/store/proto-kv-store.js";

export const PICKUPS_BUCKET = "thirdparty-pickups";

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
