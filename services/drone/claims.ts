/**
 * A drone's claim: the drone record itself says which delivery holds it (status ASSIGNED,
 * `delivery_id` set) and since when (`update_time`, renewed right before the assignment record is
 * written). Claims change only through revision-checked writes, so two callers never both hold one
 * drone. A claim leaves the drone's flight as it is (a drone claimed on its way home keeps flying
 * home until its delivery flight starts).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { DroneSchema, DroneStatus, FlightStage, type Assignment, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import type { DroneRecord } from "./drone-record.js";
import { transitionOf, type FlightTiming } from "./flight.js";
import { needsFlightStart, withDeliveryFlight, withReturnFlight } from "./flight-start.js";
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

/** The drone claimed for a delivery (its flight, if any, goes on unchanged). */
export function claimedDrone(record: DroneRecord, deliveryId: string, now: Date): DroneRecord {
  return {
    ...record,
    drone: create(DroneSchema, { ...record.drone, status: DroneStatus.ASSIGNED, deliveryId, updateTime: timestampFromDate(now) }),
  };
}

export interface FreeOptions {
  /**
   * Turn the drone home if it is still flying the delivery of its claim (before the drop-off):
   * true when that delivery's assignment was released.
   */
  readonly turnHome: boolean;
  readonly timing: FlightTiming;
}

/** True while the record's flight is the delivery flight of `deliveryId` and has not reached the drop-off. */
export function isCarrying(record: DroneRecord, deliveryId: string): boolean {
  const flight = record.flight;
  if (!flight || deliveryId === "" || flight.deliveryId !== deliveryId) return false;
  const dropoff = transitionOf(flight, FlightStage.DROPPING_OFF);
  return dropoff !== undefined && flight.applied < dropoff;
}

/**
 * The drone free again: available, no delivery. A drone still carrying out the released delivery
 * turns home from where it is; any other flight goes on (a drone on the ground stays there).
 */
export function freedDrone(record: DroneRecord, now: Date, options: FreeOptions): DroneRecord {
  const claimed = record.drone.deliveryId;
  const base = options.turnHome && isCarrying(record, claimed) ? withReturnFlight(record, now.getTime(), options.timing) : record;
  return {
    ...base,
    drone: create(DroneSchema, { ...base.drone, status: DroneStatus.AVAILABLE, deliveryId: "", updateTime: timestampFromDate(now) }),
  };
}

/**
 * Applies `change` to the drone if `applies` holds for it, re-reading after a lost race. Returns the
 * record as stored afterwards when `applies` held, undefined when it did not (or no such drone).
 */
export async function changeDroneIf(
  store: DroneStore,
  droneId: string,
  applies: (record: DroneRecord) => boolean,
  change: (record: DroneRecord) => DroneRecord,
): Promise<DroneRecord | undefined> {
  return (await changeDroneVersioned(store, droneId, applies, change))?.value;
}

/** `changeDroneIf`, answering the record with the revision it is stored at. */
async function changeDroneVersioned(
  store: DroneStore,
  droneId: string,
  applies: (record: DroneRecord) => boolean,
  change: (record: DroneRecord) => DroneRecord,
): Promise<Versioned<DroneRecord> | undefined> {
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    const current = await store.getDrone(droneId);
    if (!current || !applies(current.value)) return undefined;
    const next = change(current.value);
    if (next === current.value) return current;
    try {
      return { value: next, revision: await store.updateDrone(next, current.revision) };
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }
  // Still changing under us after every attempt: let the caller start over from a fresh read.
  return undefined;
}

/**
 * Renews the claim of `deliveryId` on the drone (fresh `update_time`) and returns the drone with
 * the revision written, or undefined when the drone is no longer claimed for the delivery.
 */
export function renewClaim(store: DroneStore, droneId: string, deliveryId: string, now: () => Date): Promise<Versioned<DroneRecord> | undefined> {
  return changeDroneVersioned(
    store,
    droneId,
    (r) => isClaimedFor(r.drone, deliveryId),
    (r) => claimedDrone(r, deliveryId, now()),
  );
}

/** Frees the drone if it is still claimed for `deliveryId`; otherwise leaves it alone. */
export async function releaseClaim(
  store: DroneStore,
  droneId: string,
  deliveryId: string,
  now: () => Date,
  options: FreeOptions,
): Promise<boolean> {
  const freed = await changeDroneIf(
    store,
    droneId,
    (r) => isClaimedFor(r.drone, deliveryId),
    (r) => freedDrone(r, now(), options),
  );
  return freed !== undefined;
}

/**
 * Turns the claim of an active assignment into its delivery flight: starts the flight on the drone
 * claimed for it unless it already flies it. Returns the drone record afterwards, or undefined when
 * the drone is no longer claimed for the delivery.
 */
export function startFlight(
  store: DroneStore,
  assignment: Assignment,
  timing: FlightTiming,
  now: () => Date,
): Promise<DroneRecord | undefined> {
  return changeDroneIf(
    store,
    assignment.droneId,
    (r) => isClaimedFor(r.drone, assignment.deliveryId),
    (r) => (needsFlightStart(r, assignment) ? withDeliveryFlight(r, assignment, timing, now().getTime()) : r),
  );
}
