/**
 * A booking's plan in time, and what the carrier reports next. Pure functions of the stored
 * booking, the settings and the clock; the simulator decides when to publish and store.
 *
 *   stage               due at                                          position
 *   BOOKED              arrange_time                                    -
 *   HEADED_TO_PICKUP    pickup_eta minus the approach, not before BOOKED -
 *   PICKED_UP           pickup_eta                                      the pickup location
 *   IN_TRANSIT          half way from pickup_eta to delivery_eta        half way along the route
 *   DELIVERED           delivery_eta                                    the drop-off location
 *
 * Beside the booking, its `CarrierProgress` keeps the last stage published and its sequence: the
 * next stage is the plan's entry at that sequence, so a stage is never
 * published twice by design (a repeat after a crash between publishing and storing carries the
 * same message id and sequence) and none is skipped, however late the simulator looks. A
 * cancelled booking still reports the stages that fell due before its cancel time, then
 * CANCELLED at the cancel time, unless the parcels were handed over before it; after DELIVERED
 * or CANCELLED nothing follows.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { LocationSchema, type Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { CarrierStage, CarrierStatusEventSchema, type CarrierStatusEvent } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_events_pb.js";
import {
  CarrierProgressSchema,
  PickupStatus,
  type CarrierProgress,
  type Pickup,
} from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { scaledMs, type ThirdPartyConfig } from "./config.js";

export type PlanConfig = Pick<ThirdPartyConfig, "approachMinutes" | "timeScale">;

/** One stage of a booking's plan. */
export interface PlannedStage {
  readonly stage: CarrierStage;
  /** When it falls due (epoch ms). */
  readonly atMs: number;
  /** Its place in the booking's sequence of events, from 1. */
  readonly sequence: number;
  /** Where the parcels are, where known. */
  readonly position?: Location | undefined;
}

/** The stage's name as the contract spells it without its prefix, e.g. "PICKED_UP". */
export function carrierStageName(stage: CarrierStage): string {
  return CarrierStage[stage] ?? `stage ${stage}`;
}

/** Whether nothing follows the stage. */
export function isFinalCarrierStage(stage: CarrierStage): boolean {
  return stage === CarrierStage.DELIVERED || stage === CarrierStage.CANCELLED;
}

/** The point a fraction `f` of the way from `a` to `b` (straight in latitude and longitude). */
function between(a: Location, b: Location, f: number): Location {
  const at = (x: number, y: number) => x + (y - x) * f;
  return create(LocationSchema, { latitude: at(a.latitude, b.latitude), longitude: at(a.longitude, b.longitude), altitude: at(a.altitude, b.altitude) });
}

/** The booking's plan, from BOOKED to DELIVERED, whatever its status. */
export function planOf(booking: Pickup, config: PlanConfig): PlannedStage[] {
  const arrangeMs = booking.arrangeTime ? timestampMs(booking.arrangeTime) : 0;
  const pickupMs = Math.max(arrangeMs, booking.pickupEta ? timestampMs(booking.pickupEta) : arrangeMs);
  const deliveryMs = Math.max(pickupMs, booking.deliveryEta ? timestampMs(booking.deliveryEta) : pickupMs);
  const setOffMs = Math.min(pickupMs, Math.max(arrangeMs, Math.round(pickupMs - scaledMs(config.approachMinutes, config))));
  const { pickup, dropoff } = booking;
  return [
    { stage: CarrierStage.BOOKED, atMs: arrangeMs, sequence: 1 },
    { stage: CarrierStage.HEADED_TO_PICKUP, atMs: setOffMs, sequence: 2 },
    { stage: CarrierStage.PICKED_UP, atMs: pickupMs, sequence: 3, position: pickup },
    {
      stage: CarrierStage.IN_TRANSIT,
      atMs: Math.round((pickupMs + deliveryMs) / 2),
      sequence: 4,
      position: pickup && dropoff ? between(pickup, dropoff, 0.5) : undefined,
    },
    { stage: CarrierStage.DELIVERED, atMs: deliveryMs, sequence: 5, position: dropoff },
  ];
}

/**
 * The next stage the carrier reports for the booking (due or not) after `progress` (undefined
 * before the first), or undefined when it is done.
 */
export function nextStage(booking: Pickup, progress: CarrierProgress | undefined, config: PlanConfig): PlannedStage | undefined {
  if (progress && isFinalCarrierStage(progress.stage)) return undefined;
  const done = Number(progress?.sequence ?? 0n);
  const planned = planOf(booking, config)[done];
  if (booking.status !== PickupStatus.CANCELLED) return planned;
  const cancelMs = booking.cancelTime ? timestampMs(booking.cancelTime) : 0;
  if (planned && planned.atMs < cancelMs) return planned;
  return { stage: CarrierStage.CANCELLED, atMs: cancelMs, sequence: done + 1 };
}

/** The stages of `booking` due at `nowMs` and not yet reported after `progress`, in order. */
export function dueStages(booking: Pickup, progress: CarrierProgress | undefined, config: PlanConfig, nowMs: number): PlannedStage[] {
  const due: PlannedStage[] = [];
  let at = progress;
  for (let next = nextStage(booking, at, config); next && next.atMs <= nowMs; next = nextStage(booking, at, config)) {
    due.push(next);
    at = reported(booking, next, nowMs);
  }
  return due;
}

/** The progress record once `stage` of the booking was published at `nowMs`. */
export function reported(booking: Pickup, stage: PlannedStage, nowMs: number): CarrierProgress {
  return create(CarrierProgressSchema, {
    deliveryId: booking.deliveryId,
    trackingId: booking.trackingId,
    stage: stage.stage,
    sequence: BigInt(stage.sequence),
    publishTime: timestampFromMs(nowMs),
  });
}

/** The event of a stage of the booking. */
export function statusEvent(booking: Pickup, stage: PlannedStage): CarrierStatusEvent {
  const beforePickup = stage.stage === CarrierStage.BOOKED || stage.stage === CarrierStage.HEADED_TO_PICKUP;
  return create(CarrierStatusEventSchema, {
    deliveryId: booking.deliveryId,
    trackingId: booking.trackingId,
    carrier: booking.carrier,
    stage: stage.stage,
    position: stage.position,
    pickupEta: beforePickup ? booking.pickupEta : undefined,
    deliveryEta: stage.stage === CarrierStage.CANCELLED ? undefined : booking.deliveryEta,
    eventTime: timestampFromMs(stage.atMs),
    sequence: BigInt(stage.sequence),
  });
}

/** The JetStream message id of a stage event: `<deliveryId>:<trackingId>:<STAGE>`. */
export function statusMsgId(booking: Pickup, stage: CarrierStage): string {
  return `${booking.deliveryId}:${booking.trackingId}:${carrierStageName(stage)}`;
}
