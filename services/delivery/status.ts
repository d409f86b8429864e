/**
 * Views of a stored delivery: its current status, and its stage history as status events.
 */
import { create } from "@bufbuild/protobuf";
import {
  DeliveryStage,
  DeliveryStatusSchema,
  type Delivery,
  type DeliveryStatus,
} from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { isEnded } from "./stages.js";

/** Whether the parcels have left the pickup location (or the delivery ended). */
function pickedUpOrEnded(stage: DeliveryStage): boolean {
  return stage === DeliveryStage.HEADED_TO_DROPOFF || isEnded(stage);
}

/**
 * The current status: stage, last known location and update time as stored; the pickup ETA only
 * while the pickup is ahead, the delivery ETA only while the delivery has not ended.
 */
export function statusOf(delivery: Delivery): DeliveryStatus {
  return create(DeliveryStatusSchema, {
    deliveryId: delivery.deliveryId,
    stage: delivery.stage,
    lastKnownLocation: delivery.lastKnownLocation,
    pickupEta: pickedUpOrEnded(delivery.stage) ? undefined : delivery.pickupEta,
    deliveryEta: isEnded(delivery.stage) ? undefined : delivery.deliveryEta,
    updateTime: delivery.updateTime,
  });
}

/**
 * The stage history as status events, oldest first. What each entry does not keep is derived
 * from the record: until a delivery ends its parcels are at the pickup location when a stage is
 * entered (waiting, or just picked up), and a final stage is entered where they were last seen.
 * The ETAs are known for the current stage only (the record keeps the latest estimates), so
 * earlier events carry none, and none is carried once the delivery has ended.
 */
export function historyEvents(delivery: Delivery): DeliveryStatusEvent[] {
  const droneId = delivery.carrier.case === "droneId" ? delivery.carrier.value : "";
  const last = delivery.history.length - 1;
  return delivery.history.map((change, i) => {
    const current = i === last && change.stage === delivery.stage;
    return create(DeliveryStatusEventSchema, {
      deliveryId: delivery.deliveryId,
      ownerId: delivery.ownerId,
      stage: change.stage,
      previousStage: i === 0 ? DeliveryStage.UNSPECIFIED : (delivery.history[i - 1]?.stage ?? DeliveryStage.UNSPECIFIED),
      location: isEnded(change.stage) ? delivery.lastKnownLocation : delivery.pickup,
      pickupEta: current && !pickedUpOrEnded(change.stage) ? delivery.pickupEta : undefined,
      deliveryEta: current && !isEnded(change.stage) ? delivery.deliveryEta : undefined,
      droneId,
      reason: change.reason,
      eventTime: change.changeTime,
    });
  });
}
