/**
 * The per-owner index of deliveries: one small entry per delivery, keyed so that an owner's keys
 * sort newest first (keys.ts). Listing and monthly summaries read an owner's index keys instead
 * of every delivery in the bucket, then load only the records they need.
 */
import { create } from "@bufbuild/protobuf";
import { timestampMs, StringValueSchema } from "@bufbuild/protobuf/wkt";
import type { Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { indexPosition, ownerIndexFilter, ownerIndexKey, positionOfIndexKey, type IndexPosition } from "./keys.js";
import type { DeliveryStore } from "./store.js";

/** The index position of a stored delivery (its creation time and id). */
export function positionOf(delivery: Delivery): string {
  if (!delivery.createTime) throw new TypeError(`delivery ${delivery.deliveryId} has no create_time`);
  return indexPosition(timestampMs(delivery.createTime), delivery.deliveryId);
}

export class OwnerIndex {
  constructor(private readonly store: DeliveryStore) {}

  /**
   * Records a new delivery in its owner's index. The key and value follow from the delivery
   * alone, so a second writer (another instance) stores the same entry.
   */
  async add(delivery: Delivery): Promise<void> {
    await this.store.ownerIndex.put(this.keyOf(delivery), create(StringValueSchema, { value: delivery.deliveryId }));
  }

  /** Records a delivery unless its entry is there already (repairs an interrupted schedule). */
  async ensure(delivery: Delivery): Promise<void> {
    if (!(await this.store.ownerIndex.get(this.keyOf(delivery)))) await this.add(delivery);
  }

  private keyOf(delivery: Delivery): string {
    return ownerIndexKey(delivery.ownerId, positionOf(delivery));
  }

  /** Every indexed delivery of an owner, newest first (ties by delivery id). */
  async positions(ownerId: string): Promise<IndexPosition[]> {
    const keys = await this.store.ownerIndex.keys(ownerIndexFilter(ownerId));
    const positions: IndexPosition[] = [];
    for (const key of keys) {
      const position = positionOfIndexKey(ownerId, key);
      if (position) positions.push(position);
    }
    return positions.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  }
}
