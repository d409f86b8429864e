/**
 * Frees drones whose claim no longer stands for an active assignment, so a crash never keeps a
 * drone busy for good. A drone ASSIGNED to delivery X is orphaned when:
 *  - X has an assignment record that is not ACTIVE, or that names another drone: the record is
 *    final (it is created once and never re-pointed), so no caller can still need this claim;
 *  - X has no assignment record and the claim is older than the lease: the process that claimed
 *    the drone stopped between the claim and the record (a live caller renews the claim right
 *    before writing the record, so a claim older than the lease belongs to nobody).
 * Each drone is freed with a write checked against the revision it was judged at: a drone whose
 * claim was renewed or changed in the meantime is left alone. A drone still flying a delivery whose
 * assignment was released turns home; any other flight goes on.
 */
import { AssignmentState, DroneStatus, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { claimedAtMs, freedDrone } from "./claims.js";
import type { DroneRecord } from "./drone-record.js";
import type { FlightTiming } from "./flight.js";
import type { DroneStore } from "./store.js";

export interface ReclaimOptions {
  readonly claimLeaseMs: number;
  readonly timing: FlightTiming;
  readonly now: () => Date;
}

type Verdict = { orphaned: false } | { orphaned: true; turnHome: boolean };

async function judge(store: DroneStore, drone: Drone, options: ReclaimOptions): Promise<Verdict> {
  if (drone.deliveryId === "") return { orphaned: true, turnHome: false };
  const assignment = await store.getAssignment(drone.deliveryId);
  if (assignment) {
    const { state, droneId } = assignment.value;
    if (droneId !== drone.droneId) return { orphaned: true, turnHome: false };
    if (state === AssignmentState.ACTIVE) return { orphaned: false };
    return { orphaned: true, turnHome: state === AssignmentState.RELEASED };
  }
  if (options.now().getTime() - claimedAtMs(drone) >= options.claimLeaseMs) return { orphaned: true, turnHome: false };
  return { orphaned: false };
}

/** Frees the orphaned drones among `drones` (a snapshot); returns how many it freed. */
export async function reclaimOrphanedClaims(
  store: DroneStore,
  drones: readonly Versioned<DroneRecord>[],
  options: ReclaimOptions,
): Promise<number> {
  let freed = 0;
  for (const { value: record, revision } of drones) {
    if (record.drone.status !== DroneStatus.ASSIGNED) continue;
    const verdict = await judge(store, record.drone, options);
    if (!verdict.orphaned) continue;
    try {
      await store.updateDrone(freedDrone(record, options.now(), { turnHome: verdict.turnHome, timing: options.timing }), revision);
      freed++;
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }
  return freed;
}
