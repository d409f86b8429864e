/**
 * Releasing an assignment: the assignment record is ended first (ACTIVE -> RELEASED, decided by its
 * revision, so among concurrent releases exactly one reports `released`), then the drone is freed
 * if it is still claimed for the delivery, and turned home from where it is if it was flying the
 * delivery (a drone still on the ground stays there). The second step also runs when the
 * assignment had already ended, so a release retried after a crash between the two writes
 * finishes the job.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AssignmentSchema, AssignmentState, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { aborted } from "../../lib/grpc/errors.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import { releaseClaim } from "./claims.js";
import type { FlightTiming } from "./flight.js";
import type { DroneStore } from "./store.js";

export interface ReleaseResult {
  /** The assignment after the call; undefined when the delivery was never assigned. */
  readonly assignment: Assignment | undefined;
  /** True when this call ended an active assignment. */
  readonly released: boolean;
}

/** Attempts before a release that keeps losing races answers ABORTED. */
const RELEASE_ATTEMPTS = 10;

export async function releaseAssignment(
  store: DroneStore,
  deliveryId: string,
  reason: string,
  now: () => Date,
  timing: FlightTiming,
): Promise<ReleaseResult> {
  for (let attempt = 1; attempt <= RELEASE_ATTEMPTS; attempt++) {
    const current = await store.getAssignment(deliveryId);
    if (!current) return { assignment: undefined, released: false };
    if (current.value.state !== AssignmentState.ACTIVE) {
      // A completed delivery's drone flies on home by its plan; a released one turns home.
      const turnHome = current.value.state === AssignmentState.RELEASED;
      await releaseClaim(store, current.value.droneId, deliveryId, now, { turnHome, timing });
      return { assignment: current.value, released: false };
    }
    const ended = create(AssignmentSchema, {
      ...current.value,
      state: AssignmentState.RELEASED,
      releaseReason: reason,
      endTime: timestampFromDate(now()),
    });
    try {
      await store.updateAssignment(ended, current.revision);
    } catch (error) {
      if (isRevisionConflict(error)) continue;
      throw error;
    }
    await releaseClaim(store, ended.droneId, deliveryId, now, { turnHome: true, timing });
    return { assignment: ended, released: true };
  }
  throw aborted(`releasing the assignment of delivery ${deliveryId} kept conflicting with concurrent calls; retry the call`);
}
