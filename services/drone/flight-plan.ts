/**
 * The plan of a flight: home base (the drone's position) -> pickup -> drop-off -> home base, at
 * the drone's cruising speed in straight great-circle legs, without time on the ground.
 */
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import type { Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { distanceKm } from "./geo.js";

export interface FlightPlan {
  /** Whole flight, back to the home base, in kilometres. */
  readonly plannedDistanceKm: number;
  readonly pickupEta: Timestamp;
  readonly dropoffEta: Timestamp;
}

/** The drone's position, falling back to its home base. */
export function whereIs(drone: Drone): Location | undefined {
  return drone.position ?? drone.homeBase;
}

export function planFlight(drone: Drone, pickup: Location, dropoff: Location, start: Date): FlightPlan {
  const from = whereIs(drone) ?? pickup;
  const home = drone.homeBase ?? from;
  const toPickupKm = distanceKm(from, pickup);
  const toDropoffKm = distanceKm(pickup, dropoff);
  const homeKm = distanceKm(dropoff, home);
  const msFor = (km: number): number => (km * 1000 * 1000) / drone.speedMps;
  const pickupAt = start.getTime() + msFor(toPickupKm);
  const dropoffAt = pickupAt + msFor(toDropoffKm);
  return {
    plannedDistanceKm: toPickupKm + toDropoffKm + homeKm,
    pickupEta: timestampFromMs(Math.round(pickupAt)),
    dropoffEta: timestampFromMs(Math.round(dropoffAt)),
  };
}
