/**
 * Rerouting an assignment: its drone's delivery flight re-planned to a new drop-off, and the
 * assignment's drop-off, planned distance and ETAs following the new plan.
 *
 * The drone record is written first (revision-checked): that write decides, against the flying
 * instance, whether the reroute happened. The flying instance commits a flight's drop-off with a
 * revision-checked write of the record before it publishes anything of the drop-off
 * (simulator.ts), so either the reroute's write comes first and the old drop-off is never
 * published, or the commit comes first and the reroute, reading again, answers that the parcels
 * were dropped off. The assignment is then written to match the plan stored with the drone
 * (revision-checked too). A call that finds the drone already flying to the requested drop-off
 * changes no flight, and brings the assignment in line if a crash (or a concurrent reroute) left
 * it behind, so a repeated call is safe and finishes an interrupted one.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { AssignmentSchema, AssignmentState, FlightStage, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { aborted, failedPrecondition, notFound } from "../../lib/grpc/errors.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import { isClaimedFor, startFlight } from "./claims.js";
import { deliveryDistanceKm, dropoffOf, isDropoffFixed, transitionMs, transitionOf, type Flight, type FlightTiming, type Point } from "./flight.js";
import { hasFlightFor, withReroute } from "./flight-start.js";
import type { DroneStore } from "./store.js";

/** Attempts before a reroute that keeps losing races answers ABORTED. */
const REROUTE_ATTEMPTS = 10;

/** The PreconditionFailure violation types of a refused reroute. */
export const DROPPED_OFF = "DROPPED_OFF";
export const RELEASED = "RELEASED";

/** Same place: same latitude and longitude (a drone flies to a point on the ground). */
const samePoint = (a: Point | undefined, b: Point | undefined): boolean =>
  a !== undefined && b !== undefined && a.latitude === b.latitude && a.longitude === b.longitude;

function refused(deliveryId: string, type: string, description: string) {
  return failedPrecondition(`delivery ${deliveryId} cannot be rerouted: ${description}`, [
    { type, subject: `delivery:${deliveryId}`, description },
  ]);
}

/**
 * The assignment as the delivery flight `flight` plans it, with `dropoff` as its drop-off: planned
 * distance = distance flown before the flight + its moving legs, drop-off ETA = the start of its
 * drop-off, pickup ETA = its arrival at the pickup if it still flies there (else unchanged).
 */
export function assignmentFollowing(assignment: Assignment, flight: Flight, dropoff: Location): Assignment {
  const at = (stage: FlightStage) => {
    const i = transitionOf(flight, stage);
    return i === undefined ? undefined : timestampFromMs(transitionMs(flight, i));
  };
  const headedToPickup = flight.legs[0]?.stage === FlightStage.HEADED_TO_PICKUP;
  return create(AssignmentSchema, {
    ...assignment,
    dropoff,
    plannedDistanceKm: deliveryDistanceKm(flight),
    pickupEta: (headedToPickup ? at(FlightStage.PICKING_UP) : undefined) ?? assignment.pickupEta,
    dropoffEta: at(FlightStage.DROPPING_OFF) ?? assignment.dropoffEta,
  });
}

export async function rerouteAssignment(
  store: DroneStore,
  deliveryId: string,
  dropoff: Location,
  now: () => Date,
  timing: FlightTiming,
): Promise<Assignment> {
  for (let attempt = 1; attempt <= REROUTE_ATTEMPTS; attempt++) {
    const current = await store.getAssignment(deliveryId);
    if (!current) throw notFound(`assignment of delivery ${deliveryId}`);
    const assignment = current.value;
    if (assignment.state === AssignmentState.RELEASED) throw refused(deliveryId, RELEASED, "the assignment was released");
    if (assignment.state === AssignmentState.COMPLETED && samePoint(assignment.dropoff, dropoff)) return assignment;

    const drone = await store.getDrone(assignment.droneId);
    const flight = drone && hasFlightFor(drone.value, deliveryId) ? drone.value.flight : undefined;

    if (flight && samePoint(dropoffOf(flight), dropoff)) {
      // Already flying (or flown) there: nothing to re-plan; the assignment follows the plan.
      if (samePoint(assignment.dropoff, dropoff)) return assignment;
      const following = assignmentFollowing(assignment, flight, dropoff);
      try {
        await store.updateAssignment(following, current.revision);
        return following;
      } catch (error) {
        if (isRevisionConflict(error)) continue;
        throw error;
      }
    }
    if (assignment.state !== AssignmentState.ACTIVE) throw refused(deliveryId, DROPPED_OFF, "the parcels were already dropped off");
    // Active: its drone is claimed for it from the claim until the assignment ends; anything else
    // is a write of a concurrent call still under way, so read again.
    if (!drone || !isClaimedFor(drone.value.drone, deliveryId)) continue;
    if (!flight) {
      // The call that made the assignment stopped before starting the flight: start it first.
      await startFlight(store, assignment, timing, now);
      continue;
    }

    const nowMs = now().getTime();
    if (isDropoffFixed(flight, nowMs)) throw refused(deliveryId, DROPPED_OFF, "the parcels were already dropped off");
    const rerouted = withReroute(drone.value, dropoff, nowMs, timing);
    if (!rerouted?.flight) throw refused(deliveryId, DROPPED_OFF, "the parcels were already dropped off");
    try {
      await store.updateDrone(rerouted, drone.revision);
    } catch (error) {
      if (isRevisionConflict(error)) continue; // a stage change, the drop-off committed, a release: look again
      throw error;
    }
    const following = assignmentFollowing(assignment, rerouted.flight, dropoff);
    try {
      await store.updateAssignment(following, current.revision);
      return following;
    } catch (error) {
      // The assignment moved on (completed, released, another reroute): the next round sees how.
      if (!isRevisionConflict(error)) throw error;
    }
  }
  throw aborted(`rerouting the drone of delivery ${deliveryId} kept conflicting with concurrent calls; retry the call`);
}
