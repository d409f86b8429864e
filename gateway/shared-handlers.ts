/**
 * Handler steps every public API version shares: the internal reschedule command of a public
 * reschedule, and relaying the internal watch stream update by update. Each version's handlers
 * (v1/handlers.ts, v2/handlers.ts) map their own messages around these.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { WatchDeliveryResponse } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { RescheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { relay } from "./errors.js";
import { locationToInternal, reschedulePaths, type LocationFields } from "./shared-mapping.js";

/** A public reschedule, in either version. */
export interface PublicReschedule {
  readonly deliveryId: string;
  readonly dropoff?: LocationFields | undefined;
  readonly pickupTime?: Timestamp | undefined;
  readonly deadline?: Timestamp | undefined;
  readonly updateMask?: { readonly paths: readonly string[] } | undefined;
}

/** The Ingestion command of a public reschedule: only the fields it changes, with the mask. */
export function rescheduleCommand(
  request: PublicReschedule,
  ownerId: string,
): MessageInitShape<typeof RescheduleDeliveryRequestSchema> {
  const paths = reschedulePaths(request);
  return {
    deliveryId: request.deliveryId,
    ownerId,
    dropoff: paths.includes("dropoff") ? locationToInternal(request.dropoff) : undefined,
    pickupTime: paths.includes("pickup_time") ? request.pickupTime : undefined,
    deadline: paths.includes("deadline") ? request.deadline : undefined,
    updateMask: { paths },
  };
}

/**
 * The internal watch stream as a public one: each update mapped (empty ones skipped), internal
 * failures re-raised as public errors, and the internal call cancelled when the caller stops.
 */
export async function* relayWatch<T>(
  updates: AsyncIterable<WatchDeliveryResponse>,
  toPublic: (update: WatchDeliveryResponse) => T | undefined,
): AsyncGenerator<T> {
  const iterator = updates[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await relay(() => iterator.next());
      if (next.done) return;
      const update = toPublic(next.value);
      if (update !== undefined) yield update;
    }
  } finally {
    await iterator.return?.();
  }
}
