/**
 * An owner's use of the fleet in one calendar month (UTC), from the assignment records started in
 * that month (found through the owner-month index, each checked against its record):
 *  - distance: the planned distance of completed assignments, plus for released ones the distance
 *    flown before the release, from the assignment's timeline (assigned, pickup ETA, drop-off ETA,
 *    released) and the drone's speed at the configured time scale: towards the pickup until the
 *    pickup ETA, nothing while picking up, then towards the drop-off.
 *  - assigned time: end - assign for ended assignments, now - assign for active ones.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AssignmentState, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { distanceKm } from "./geo.js";
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

const clamp = (x: number, low: number, high: number): number => Math.min(high, Math.max(low, x));

/**
 * Kilometres a released assignment's drone flew for it before the release, flying at `speedMps`
 * with durations divided by `timeScale`.
 */
export function flownBeforeReleaseKm(assignment: Assignment, speedMps: number, timeScale: number): number {
  const { assignTime, pickupEta, dropoffEta, endTime, pickup, dropoff } = assignment;
  if (!assignTime || !pickupEta || !dropoffEta || !endTime || !pickup || !dropoff || speedMps <= 0) return 0;
  const [start, atPickup, atDropoff, released] = [assignTime, pickupEta, dropoffEta, endTime].map(timestampMs) as [number, number, number, number];
  const kmPerMs = (speedMps * timeScale) / 1_000_000;
  const toDropoffMs = distanceKm(pickup, dropoff) / kmPerMs;
  const leavesPickup = Math.max(atPickup, atDropoff - toDropoffMs);
  const towardsPickup = clamp(released - start, 0, Math.max(0, atPickup - start));
  const towardsDropoff = clamp(released - leavesPickup, 0, Math.max(0, atDropoff - leavesPickup));
  return (towardsPickup + towardsDropoff) * kmPerMs;
}

function assignedMs(assignment: Assignment, now: Date): number {
  const from = assignment.assignTime ? timestampMs(assignment.assignTime) : now.getTime();
  const until = assignment.endTime ? timestampMs(assignment.endTime) : now.getTime();
  return Math.max(0, until - from);
}

export async function ownerUtilization(
  store: DroneStore,
  ownerId: string,
  year: number,
  month: number,
  now: Date,
  timeScale: number,
): Promise<Utilization> {
  const deliveryIds = await store.ownerMonthDeliveryIds(ownerId, year, month);
  const records = await store.readAssignments(deliveryIds);
  const speeds = new Map<string, number>();
  const speedOf = async (droneId: string): Promise<number> => {
    if (!speeds.has(droneId)) speeds.set(droneId, (await store.getDrone(droneId))?.value.drone.speedMps ?? 0);
    return speeds.get(droneId)!;
  };
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
    if (assignment.state === AssignmentState.COMPLETED) distanceKm += assignment.plannedDistanceKm;
    if (assignment.state === AssignmentState.RELEASED) {
      distanceKm += flownBeforeReleaseKm(assignment, await speedOf(assignment.droneId), timeScale);
    }
    totalMs += assignedMs(assignment, now);
  }
  return { assignmentCount, completedCount, distanceKm, assignedMs: totalMs };
}
