/**
 * The Delivery service's own data: one JetStream KV bucket, `deliveries`, holding the delivery
 * records, the schedule requests that created them, the per-owner index and the status-event
 * outbox (layout in keys.ts). Nothing is kept only in memory: a restarted process, or a second
 * instance, reads what is stored.
 */
import type { JetStreamClient } from "nats";
import { StringValueSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { DeliverySchema } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { ScheduleDeliveryRequestSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { openBucket } from "../../lib/nats/kv.js";
import { ProtoKvStore } from "../../lib/store/proto-kv-store.js";

export const DELIVERIES_BUCKET = "deliveries";

export interface DeliveryStore {
  /** `delivery.<id>`: the Delivery records. Every change is revision-checked. */
  readonly records: ProtoKvStore<typeof DeliverySchema>;
  /** `request.<id>`: the first ScheduleDeliveryRequest of each id, which decides what a repeat is. */
  readonly requests: ProtoKvStore<typeof ScheduleDeliveryRequestSchema>;
  /** `owner.<ownerToken>.<position>`: the per-owner index; the value is the delivery id. */
  readonly ownerIndex: ProtoKvStore<typeof StringValueSchema>;
  /** `outbox.<id>.<token>`: status events possibly not yet published; the value is when it was written. */
  readonly outbox: ProtoKvStore<typeof TimestampSchema>;
}

export async function openDeliveryStore(js: JetStreamClient): Promise<DeliveryStore> {
  const kv = await openBucket(js, DELIVERIES_BUCKET, {
    description: "Delivery service: delivery records, their schedule requests, the per-owner index and the status-event outbox",
  });
  return {
    records: new ProtoKvStore(kv, DeliverySchema),
    requests: new ProtoKvStore(kv, ScheduleDeliveryRequestSchema),
    ownerIndex: new ProtoKvStore(kv, StringValueSchema),
    outbox: new ProtoKvStore(kv, TimestampSchema),
  };
}
