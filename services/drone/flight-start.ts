/**
 * Starting flights: the delivery flight of an assignment, its re-planned flight when the drop-off
 * changes, and the flight home of a released drone. Each is a change of the drone record (stored by
 * the caller with a revision-checked write).
 *
 * A delivery flight is a function of the drone record as it was claimed and of the assignment
 * (start time = the assignment's `assign_time`, start point = where the drone was then), so the
 * plan behind the assignment's ETAs and the plan stored with the drone are the same whoever
 * writes it: the call that created the assignment, a retry of it, or the flying instance finishing
 * a start that a crash interrupted.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { AssignmentState, DroneSchema, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { positionOf, toLocation, type DroneRecord } from "./drone-record.js";
import type { LatLon } from "./geo.js";
import { planDeliveryFlight, planReroute, planReturnFlight, transitionStage, type Flight, type FlightTiming } from "./flight.js";
import { nextSequenceBase } from "./sequence.js";

export interface Trip {
  readonly deliveryId: string;
  readonly pickup: Location;
  readonly dropoff: Location;
}

/** Slowest speed a plan assumes, so a drone stored without a speed still gets a finite plan. */
const MIN_SPEED_MPS = 0.1;

function homeOf(record: DroneRecord, fallback: Location): Location {
  return record.drone.homeBase ?? record.drone.position ?? fallback;
}

const speedOf = (record: DroneRecord): number => Math.max(MIN_SPEED_MPS, record.drone.speedMps);

/** The delivery flight the drone would fly for `trip` starting at `startMs` (numbering not set). */
export function deliveryFlightFor(record: DroneRecord, trip: Trip, startMs: number, timing: FlightTiming): Flight {
  return planDeliveryFlight(
    {
      number: (record.flight?.number ?? 0) + 1,
      deliveryId: trip.deliveryId,
      from: positionOf(record, startMs) ?? trip.pickup,
      pickup: trip.pickup,
      dropoff: trip.dropoff,
      home: homeOf(record, trip.pickup),
      speedMps: speedOf(record),
      startMs,
      sequenceBase: 0,
    },
    timing,
  );
}

/** True when the drone's current (or last) flight is the delivery flight of `deliveryId`. */
export function hasFlightFor(record: DroneRecord, deliveryId: string): boolean {
  return record.flight !== undefined && deliveryId !== "" && record.flight.deliveryId === deliveryId;
}

/** True when an assignment still needs its drone's flight started on this record. */
export function needsFlightStart(record: DroneRecord, assignment: Assignment): boolean {
  return (
    assignment.state === AssignmentState.ACTIVE &&
    assignment.droneId === record.drone.droneId &&
    record.drone.deliveryId === assignment.deliveryId &&
    !hasFlightFor(record, assignment.deliveryId)
  );
}

function withFlight(record: DroneRecord, flight: Flight, nowMs: number): DroneRecord {
  return {
    drone: create(DroneSchema, {
      ...record.drone,
      stage: transitionStage(flight, 0),
      position: toLocation(flight.legs[0]!.from),
      updateTime: timestampFromMs(nowMs),
    }),
    flight,
  };
}

/** The record with the assignment's delivery flight started (written at `nowMs`). */
export function withDeliveryFlight(record: DroneRecord, assignment: Assignment, timing: FlightTiming, nowMs: number): DroneRecord {
  const startMs = assignment.assignTime ? timestampMs(assignment.assignTime) : nowMs;
  const trip = { deliveryId: assignment.deliveryId, pickup: assignment.pickup!, dropoff: assignment.dropoff! };
  const planned = deliveryFlightFor(record, trip, startMs, timing);
  const flight = { ...planned, sequenceBase: nextSequenceBase(record.flight, Math.max(startMs, nowMs)) };
  return withFlight(record, flight, nowMs);
}

/** The record with the drone turned home from where it is at `nowMs`. */
export function withReturnFlight(record: DroneRecord, nowMs: number, timing: FlightTiming): DroneRecord {
  const from = positionOf(record, nowMs) ?? record.drone.homeBase;
  if (!from) return record;
  const flight = planReturnFlight(
    {
      number: (record.flight?.number ?? 0) + 1,
      from,
      home: homeOf(record, toLocation(from)),
      speedMps: speedOf(record),
      startMs: nowMs,
      sequenceBase: nextSequenceBase(record.flight, nowMs),
    },
    timing,
  );
  return withFlight(record, flight, nowMs);
}

/**
 * The record with its delivery flight re-planned at `nowMs` to the drop-off `dropoff` (a new flight
 * number, its numbering above the replaced flight's); undefined when the drop-off can no longer
 * change (see planReroute).
 */
export function withReroute(record: DroneRecord, dropoff: LatLon, nowMs: number, timing: FlightTiming): DroneRecord | undefined {
  const current = record.flight;
  if (!current) return undefined;
  const flight = planReroute(
    current,
    { number: current.number + 1, startMs: nowMs, dropoff, sequenceBase: nextSequenceBase(current, nowMs) },
    timing,
  );
  return flight && withFlight(record, flight, nowMs);
}
