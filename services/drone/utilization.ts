/**
 * An owner's use of the fleet in one calendar month (UTC), from the assignment records started in
 * that month (found through the owner-month index, each checked against its record):
 *  - distance: the planned distance of completed assignments. A released assignment counts the
 *    distance flown before the release; flights are not simulated yet, so that is 0 for now.
 *  - assigned time: end - assign for ended assignments, now - assign for active ones.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AssignmentState, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type { DroneStore } from "./store.js";

export interface Utilization {
  readonly assignmentCount: number;
  readonly completedCount: number;
  readonly distanceKm: number;
  readonly assignedMs: number;
}

function startedIn(assignment: Assignment, year: number, month: number): boolean {
  if (!assignment.assignTime) return false;
  const at = new Date(timestampMs(assignment.assignTime));
  return at.getUTCFullYear() === year && at.getUTCMonth() + 1 === month;
}

/** Distance flown for the assignment so far, in kilometres. */
function distanceFlownKm(assignment: Assignment): number {
  switch (assignment.state) {
    case AssignmentState.COMPLETED:
      return assignment.plannedDistanceKm;
    default:
      // Released before completion: the flown part of the flight, which is not simulated yet.
      return 0;
  }
}

function assignedMs(assignment: Assignment, now: Date): number {
  const from = assignment.assignTime ? timestampMs(assignment.assignTime) : now.getTime();
  const until = assignment.endTime ? timestampMs(assignment.endTime) : now.getTime();
  return Math.max(0, until - from);
}

export async function ownerUtilization(store: DroneStore, ownerId: string, year: number, month: number, now: Date): Promise<Utilization> {
  const deliveryIds = await store.ownerMonthDeliveryIds(ownerId, year, month);
  const records = await store.readAssignments(deliveryIds);
  let assignmentCount = 0;
  let completedCount = 0;
  let distanceKm = 0;
  let totalMs = 0;
  for (const { value: assignment } of records) {
    // An index entry is written before its record, so it may name a record that lost a race or
    // was never written; only the record decides.
    if (assignment.ownerId !== ownerId || !startedIn(assignment, year, month)) continue;
    assignmentCount++;
    if (assignment.state === AssignmentState.COMPLETED) completedCount++;
    distanceKm += distanceFlownKm(assignment);
    totalMs += assignedMs(assignment, now);
  }
  return { assignmentCount, completedCount, distanceKm, assignedMs: totalMs };
}
