/**
 * Views of a stored delivery: its current status, and the status event of each stage it entered
 * (what is published on `delivery.<deliveryId>.status`, and what Watch sends as the current status).
 */
import { create } from "@bufbuild/protobuf";
import {
  DeliveryStage,
  DeliveryStatusSchema,
  type Delivery,
  type DeliveryStatus,
} from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { isEnded, stageName } from "./stages.js";

/** Whether the parcels have left the pickup location (or the delivery ended). */
export function pickedUpOrEnded(stage: DeliveryStage): boolean {
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
    endReason: delivery.endReason,
    failureCode: delivery.failureCode,
  });
}

/**
 * The status event of the stage entered by history entry `index`. The event of the current stage
 * (the last entry) carries the record's last known location and its ETAs (those still ahead). An
 * earlier entry (published late, after a crash) carries what the record still tells of it: the
 * parcels were at the pickup location until they left it, and a final stage is entered where they
 * were last seen; its ETAs are no longer known.
 */
export function statusEventAt(delivery: Delivery, index: number): DeliveryStatusEvent {
  const change = delivery.history[index];
  if (!change) throw new RangeError(`delivery ${delivery.deliveryId} has no history entry ${index}`);
  const current = index === delivery.history.length - 1 && change.stage === delivery.stage;
  const droneId = delivery.carrier.case === "droneId" ? delivery.carrier.value : "";
  return create(DeliveryStatusEventSchema, {
    deliveryId: delivery.deliveryId,
    ownerId: delivery.ownerId,
    stage: change.stage,
    previousStage: index === 0 ? DeliveryStage.UNSPECIFIED : (delivery.history[index - 1]?.stage ?? DeliveryStage.UNSPECIFIED),
    location: current || isEnded(change.stage) ? delivery.lastKnownLocation : delivery.pickup,
    pickupEta: current && !pickedUpOrEnded(change.stage) ? delivery.pickupEta : undefined,
    deliveryEta: current && !isEnded(change.stage) ? delivery.deliveryEta : undefined,
    droneId,
    reason: change.reason,
    eventTime: change.changeTime,
    failureCode: change.stage === DeliveryStage.FAILED ? delivery.failureCode : undefined,
  });
}

/**
 * The JetStream message id of the event of history entry `index`: `<deliveryId>:<STAGE>`, and for
 * Rescheduled, which may be entered more than once, `<deliveryId>:RESCHEDULED:<n>` where n counts
 * the Rescheduled entries up to this one (1 for the first).
 */
export function statusMessageId(delivery: Delivery, index: number): string {
  const change = delivery.history[index];
  if (!change) throw new RangeError(`delivery ${delivery.deliveryId} has no history entry ${index}`);
  const base = `${delivery.deliveryId}:${stageName(change.stage)}`;
  if (change.stage !== DeliveryStage.RESCHEDULED) return base;
  const ordinal = delivery.history.slice(0, index + 1).filter((h) => h.stage === DeliveryStage.RESCHEDULED).length;
  return `${base}:${ordinal}`;
}
