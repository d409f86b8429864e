/**
 * Frees drones whose claim no longer stands for an active assignment, so a crash never keeps a
 * drone busy for good. A drone ASSIGNED to delivery X is orphaned when:
 *  - X has an assignment record that is not ACTIVE, or that names another drone: the record is
 *    final (it is created once and never re-pointed), so no caller can still need this claim;
 *  - X has no assignment record and the claim is older than the lease: the process that claimed
 *    the drone stopped between the claim and the record (a live caller renews the claim right
 *    before writing the record, so a claim older than the lease belongs to nobody).
 * Each drone is freed with a write checked against the revision it was judged at: a drone whose
 * claim was renewed or changed in the meantime is left alone.
 */
import { AssignmentState, DroneStatus, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { claimedAtMs, freedDrone } from "./claims.js";
import type { DroneStore } from "./store.js";

export interface ReclaimOptions {
  readonly claimLeaseMs: number;
  readonly now: () => Date;
}

async function isOrphaned(store: DroneStore, drone: Drone, options: ReclaimOptions): Promise<boolean> {
  if (drone.deliveryId === "") return true;
  const assignment = await store.getAssignment(drone.deliveryId);
  if (assignment) {
    return assignment.value.state !== AssignmentState.ACTIVE || assignment.value.droneId !== drone.droneId;
  }
  return options.now().getTime() - claimedAtMs(drone) >= options.claimLeaseMs;
}

/** Frees the orphaned drones among `drones` (a snapshot); returns how many it freed. */
export async function reclaimOrphanedClaims(
  store: DroneStore,
  drones: readonly Versioned<Drone>[],
  options: ReclaimOptions,
): Promise<number> {
  let freed = 0;
  for (const { value: drone, revision } of drones) {
    if (drone.status !== DroneStatus.ASSIGNED) continue;
    if (!(await isOrphaned(store, drone, options))) continue;
    try {
      await store.updateDrone(freedDrone(drone, options.now()), revision);
      freed++;
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }
  return freed;
}
