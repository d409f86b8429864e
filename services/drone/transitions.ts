/**
 * Applying a flight's stage transitions once their events are published: the drone record stores
 * the last transition applied (its stage and where it happened), and reaching the drop-off
 * completes the delivery: the assignment becomes COMPLETED (end time = the moment of the drop-off)
 * and the drone AVAILABLE again while it flies home.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AssignmentSchema, AssignmentState, DroneSchema, DroneStatus, FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { isClaimedFor } from "./claims.js";
import { toLocation, type DroneRecord } from "./drone-record.js";
import { lastTransition, transitionMs, transitionOf, transitionPoint, transitionStage, type Flight } from "./flight.js";
import { assignmentKey, type DroneStore } from "./store.js";

/** The transitions not applied yet whose time has come, in order. */
export function dueTransitions(flight: Flight, nowMs: number): number[] {
  const due: number[] = [];
  for (let i = flight.applied + 1; i <= lastTransition(flight) && transitionMs(flight, i) <= nowMs; i++) due.push(i);
  return due;
}

/** True when applying transitions up to `upTo` passes the drop-off of a delivery flight. */
export function reachesDropoff(flight: Flight, upTo: number): boolean {
  const dropoff = transitionOf(flight, FlightStage.DROPPING_OFF);
  return flight.deliveryId !== "" && dropoff !== undefined && flight.applied < dropoff && upTo >= dropoff;
}

/**
 * Completes the flight's delivery: its assignment, if still active with this drone, becomes
 * COMPLETED at the drop-off time. True when the assignment is (now or already) completed by this
 * drone; false when it was released or names another drone.
 */
export async function completeDelivery(store: DroneStore, droneId: string, flight: Flight): Promise<boolean> {
  const dropoff = transitionOf(flight, FlightStage.DROPPING_OFF)!;
  const result = await store.assignments.mutateExisting(assignmentKey(flight.deliveryId), (current) => {
    if (current.droneId !== droneId || current.state !== AssignmentState.ACTIVE) return UNCHANGED;
    return create(AssignmentSchema, { ...current, state: AssignmentState.COMPLETED, endTime: timestampFromMs(transitionMs(flight, dropoff)) });
  });
  return result !== undefined && result.value.droneId === droneId && result.value.state === AssignmentState.COMPLETED;
}

/**
 * The record with transitions up to `upTo` applied: stage and position of that transition, and
 * when `completed`, the drone freed from its delivery.
 */
export function appliedRecord(record: DroneRecord, upTo: number, completed: boolean, nowMs: number): DroneRecord {
  const flight = record.flight!;
  const free = completed && isClaimedFor(record.drone, flight.deliveryId);
  return {
    flight: { ...flight, applied: upTo },
    drone: create(DroneSchema, {
      ...record.drone,
      stage: transitionStage(flight, upTo),
      position: toLocation(transitionPoint(flight, upTo)),
      updateTime: timestampFromMs(nowMs),
      ...(free ? { status: DroneStatus.AVAILABLE, deliveryId: "" } : {}),
    }),
  };
}
