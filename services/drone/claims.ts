/**
 * A drone's claim: the drone record itself says which delivery holds it (status ASSIGNED,
 * `delivery_id` set) and since when (`update_time`, renewed right before the assignment record is
 * written). Claims change only through revision-checked writes, so two callers never both hold one
 * drone.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { DroneSchema, DroneStatus, FlightStage, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import type { DroneStore } from "./store.js";

/** Attempts of a read-check-write loop on one drone before giving up on a busy record. */
const WRITE_ATTEMPTS = 10;

export function isClaimedFor(drone: Drone, deliveryId: string): boolean {
  return drone.status === DroneStatus.ASSIGNED && drone.deliveryId === deliveryId;
}

/** When the current claim was made or last renewed, in epoch ms (0 when unknown). */
export function claimedAtMs(drone: Drone): number {
  return drone.updateTime ? timestampMs(drone.updateTime) : 0;
}

/** The drone claimed for a delivery (the flight is not started: the stage stays as it is). */
export function claimedDrone(drone: Drone, deliveryId: string, now: Date): Drone {
  return create(DroneSchema, { ...drone, status: DroneStatus.ASSIGNED, deliveryId, updateTime: timestampFromDate(now) });
}

/** The drone free again: available, on the ground, no delivery. */
export function freedDrone(drone: Drone, now: Date): Drone {
  return create(DroneSchema, {
    ...drone,
    status: DroneStatus.AVAILABLE,
    stage: FlightStage.IDLE,
    deliveryId: "",
    updateTime: timestampFromDate(now),
  });
}

/**
 * Applies `change` to the drone if `applies` holds for it, re-reading after a lost race. Returns the
 * drone as stored afterwards when `applies` held, undefined when it did not (or no such drone).
 */
async function changeDroneIf(
  store: DroneStore,
  droneId: string,
  applies: (drone: Drone) => boolean,
  change: (drone: Drone) => Drone,
): Promise<Drone | undefined> {
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    const current = await store.getDrone(droneId);
    if (!current || !applies(current.value)) return undefined;
    const next = change(current.value);
    try {
      await store.updateDrone(next, current.revision);
      return next;
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }
  // Still changing under us after every attempt: let the caller start over from a fresh read.
  return undefined;
}

/**
 * Renews the claim of `deliveryId` on the drone (fresh `update_time`) and returns the drone, or
 * undefined when the drone is no longer claimed for the delivery.
 */
export function renewClaim(store: DroneStore, droneId: string, deliveryId: string, now: () => Date): Promise<Drone | undefined> {
  return changeDroneIf(
    store,
    droneId,
    (d) => isClaimedFor(d, deliveryId),
    (d) => claimedDrone(d, deliveryId, now()),
  );
}

/** Frees the drone if it is still claimed for `deliveryId`; otherwise leaves it alone. */
export async function releaseClaim(store: DroneStore, droneId: string, deliveryId: string, now: () => Date): Promise<boolean> {
  const freed = await changeDroneIf(
    store,
    droneId,
    (d) => isClaimedFor(d, deliveryId),
    (d) => freedDrone(d, now()),
  );
  return freed !== undefined;
}
