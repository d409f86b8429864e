/**
 * The drone's progress as the delivery's: pure rules from a DroneLocationEvent of the drone
 * assigned to a delivery to the delivery's next record (stages entered, where the parcels are,
 * the ETAs). They decide; they do not store.
 *
 *   drone flight stage                      delivery stage
 *   HEADED_TO_PICKUP, PICKING_UP         -> HEADED_TO_PICKUP
 *   HEADED_TO_DROPOFF                    -> HEADED_TO_DROPOFF
 *   DROPPING_OFF                         -> COMPLETED (the parcels are released at the drop-off)
 *   RETURNING, IDLE (with the delivery)  -> COMPLETED, once the parcels were picked up
 *
 * Stages only move forward, through `enterStage`; a move over several stages (an event seen late
 * or missed) enters each stage in between, so the history always tells the whole way.
 */
import { clone, equals } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { DeliverySchema, DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { distanceMetres } from "./geo.js";
import { enterStage, type Decision } from "./lifecycle.js";
import { isEnded, mayEnter } from "./stages.js";

/** The stages the drone's progress moves a delivery through, in order. */
const FLIGHT_PATH = [DeliveryStage.HEADED_TO_PICKUP, DeliveryStage.HEADED_TO_DROPOFF, DeliveryStage.COMPLETED] as const;

/** The delivery stage a flight stage stands for, given where the delivery is; undefined for none. */
export function deliveryStageFor(flight: FlightStage, current: DeliveryStage): DeliveryStage | undefined {
  switch (flight) {
    case FlightStage.HEADED_TO_PICKUP:
    case FlightStage.PICKING_UP:
      return DeliveryStage.HEADED_TO_PICKUP;
    case FlightStage.HEADED_TO_DROPOFF:
      return DeliveryStage.HEADED_TO_DROPOFF;
    case FlightStage.DROPPING_OFF:
      return DeliveryStage.COMPLETED;
    case FlightStage.RETURNING:
    case FlightStage.IDLE:
      // After the drop-off (its event missed); before the pickup it says nothing of the parcels.
      return current === DeliveryStage.HEADED_TO_DROPOFF ? DeliveryStage.COMPLETED : undefined;
    default:
      return undefined;
  }
}

/** The stages to enter, in order, to move from `current` to `target` (none when not forward). */
export function stagesTo(current: DeliveryStage, target: DeliveryStage | undefined): DeliveryStage[] {
  if (target === undefined || !mayEnter(current, target)) return [];
  const path: DeliveryStage[] = [];
  let at = current;
  for (const stage of FLIGHT_PATH) {
    if (mayEnter(at, stage)) {
      path.push(stage);
      at = stage;
    }
    if (stage === target) break;
  }
  return path;
}

/** Whether the event is of the drone carrying out this delivery. */
export function isAssignedDrone(delivery: Delivery, event: DroneLocationEvent): boolean {
  return delivery.carrier.case === "droneId" && delivery.carrier.value === event.droneId && event.deliveryId === delivery.deliveryId;
}

export interface ProgressInput {
  readonly event: DroneLocationEvent;
  /** Ground speed for the ETAs, in m/s (> 0). */
  readonly speedMps: number;
  /** Also store the position and ETAs when no stage is entered (the write interval has passed). */
  readonly writePosition: boolean;
}

/**
 * The next record after a location event: the stages entered, the parcels' location (the
 * drone's position once it carries them, the drop-off once delivered; before the pickup they wait
 * at the pickup location) and the ETAs. UNCHANGED when the event is not of the assigned drone, the
 * delivery has ended, or nothing would change.
 *
 * The position and ETAs are taken only from an event measured no earlier than the one the record
 * holds them from (`location_time`): the instances of the service share the telemetry consumer, so
 * two events of one drone may be handled by two instances at once, and the older one may reach the
 * store last. Its stages still count (stages only move forward).
 */
export function applyProgress(delivery: Delivery, input: ProgressInput, now: Date): Decision {
  const { event } = input;
  if (isEnded(delivery.stage) || !isAssignedDrone(delivery, event)) return UNCHANGED;
  let next = delivery;
  for (const stage of stagesTo(delivery.stage, deliveryStageFor(event.stage, delivery.stage))) next = enterStage(next, stage, now);
  const entered = next !== delivery;
  if (!entered && !input.writePosition) return UNCHANGED;
  const older = isOlderThanPlaced(delivery, event);
  if (!entered && older) return UNCHANGED;
  if (!entered) next = clone(DeliverySchema, delivery);
  if (!older || next.stage === DeliveryStage.COMPLETED) placeParcels(next, input, now);
  if (!entered) {
    if (equals(DeliverySchema, next, delivery)) return UNCHANGED;
    next.updateTime = timestampFromDate(now);
  }
  if (!older && event.eventTime) next.locationTime = event.eventTime;
  return next;
}

/** True when the event was measured before the one whose position and ETAs the record holds. */
function isOlderThanPlaced(delivery: Delivery, event: DroneLocationEvent): boolean {
  if (!event.eventTime || !delivery.locationTime) return false;
  return timestampDate(event.eventTime).getTime() < timestampDate(delivery.locationTime).getTime();
}

export interface Route {
  readonly pickup?: Location | undefined;
  readonly dropoff?: Location | undefined;
}

export interface Arrivals {
  /** Arrival at the pickup location; only while the drone is on its way there or loading. */
  readonly pickupEta?: Timestamp;
  /** Arrival at the drop-off location; only until the parcels are released. */
  readonly deliveryEta?: Timestamp;
}

/**
 * The ETAs of a location event: the drone's own (`pickup_eta`, `dropoff_eta`, from its flight
 * plan, in the clock the flight is flown in, so exact at any time scale) when the event carries
 * them; else estimated from its position: the remaining distance (to the pickup and on to the
 * drop-off, or to the drop-off) over `speedMps`, from the time the position was measured.
 */
export function estimateArrivals(route: Route, event: DroneLocationEvent, speedMps: number, now: Date): Arrivals {
  const estimated = estimateFromPosition(route, event, speedMps, now);
  switch (event.stage) {
    case FlightStage.HEADED_TO_PICKUP:
    case FlightStage.PICKING_UP:
      return withDefined({ pickupEta: event.pickupEta ?? estimated.pickupEta, deliveryEta: event.dropoffEta ?? estimated.deliveryEta });
    case FlightStage.HEADED_TO_DROPOFF:
    case FlightStage.DROPPING_OFF:
      return withDefined({ deliveryEta: event.dropoffEta ?? estimated.deliveryEta });
    default:
      return {};
  }
}

function withDefined(arrivals: { pickupEta?: Timestamp | undefined; deliveryEta?: Timestamp | undefined }): Arrivals {
  return {
    ...(arrivals.pickupEta ? { pickupEta: arrivals.pickupEta } : {}),
    ...(arrivals.deliveryEta ? { deliveryEta: arrivals.deliveryEta } : {}),
  };
}

/** The ETAs estimated from the event's position, time and `speedMps` (see estimateArrivals). */
function estimateFromPosition(route: Route, event: DroneLocationEvent, speedMps: number, now: Date): Arrivals {
  const { position } = event;
  const { pickup, dropoff } = route;
  if (!position || !pickup || !dropoff || !(speedMps > 0)) return {};
  const measured = event.eventTime ? timestampDate(event.eventTime).getTime() : now.getTime();
  const after = (metres: number) => timestampFromDate(new Date(measured + Math.round((metres / speedMps) * 1000)));
  switch (event.stage) {
    case FlightStage.HEADED_TO_PICKUP:
    case FlightStage.PICKING_UP: {
      const toPickup = event.stage === FlightStage.PICKING_UP ? 0 : distanceMetres(position, pickup);
      return { pickupEta: after(toPickup), deliveryEta: after(toPickup + distanceMetres(pickup, dropoff)) };
    }
    case FlightStage.HEADED_TO_DROPOFF:
      return { deliveryEta: after(distanceMetres(position, dropoff)) };
    case FlightStage.DROPPING_OFF:
      return { deliveryEta: after(0) };
    default:
      return {};
  }
}

/** Sets the parcels' location and the ETAs of `next` (in place) from the drone's position. */
function placeParcels(next: Delivery, { event, speedMps }: ProgressInput, now: Date): void {
  if (next.stage === DeliveryStage.COMPLETED) {
    next.lastKnownLocation = next.dropoff;
    return;
  }
  const arrivals = estimateArrivals(next, event, speedMps, now);
  if (next.stage === DeliveryStage.HEADED_TO_DROPOFF) {
    if (event.position) next.lastKnownLocation = event.position;
    if (arrivals.deliveryEta) next.deliveryEta = arrivals.deliveryEta;
  } else if (next.stage === DeliveryStage.HEADED_TO_PICKUP) {
    if (arrivals.pickupEta) next.pickupEta = arrivals.pickupEta;
    if (arrivals.deliveryEta) next.deliveryEta = arrivals.deliveryEta;
  }
}
