/**
 * Assigning a drone to a delivery, safe against races and crashes without transactions:
 *
 *  1. An existing assignment record of the delivery is the answer, whatever its state.
 *  2. Payload heavier than every drone of the fleet can carry: FAILED_PRECONDITION.
 *  3. Claim a drone: reuse one already claimed for this delivery (left by a crashed or concurrent
 *     call), else claim the nearest available capable drone with a revision-checked write, moving
 *     on to the next nearest when another call claimed it first. None free: orphaned claims are
 *     reclaimed and the search repeats once; still none: RESOURCE_EXHAUSTED.
 *  4. Renew the claim, then create the assignment record (create-only: the one write that decides
 *     which call wins for this delivery).
 *  5. Lost that create to a concurrent call: answer the winner's assignment, and free the drone
 *     this call claimed if the winner uses another one. Either way, free any other drone still
 *     claimed for this delivery.
 * A crash after step 3 leaves the drone claimed for the delivery: a retry reuses it (step 3); if no
 * retry comes, the claim expires after the lease and `reclaimOrphanedClaims` frees it.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { AssignmentSchema, AssignmentState, DroneStatus, type Assignment, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type { AssignDroneRequest } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { aborted, failedPrecondition, resourceExhausted } from "../../lib/grpc/errors.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { claimedDrone, isClaimedFor, releaseClaim, renewClaim } from "./claims.js";
import { planFlight, whereIs } from "./flight-plan.js";
import { distanceKm } from "./geo.js";
import { reclaimOrphanedClaims } from "./reclaim.js";
import { compareIds, type DroneStore } from "./store.js";

export interface AssignOptions {
  readonly claimLeaseMs: number;
  readonly now: () => Date;
}

export interface AssignResult {
  readonly assignment: Assignment;
  readonly drone: Drone | undefined;
}

/** How often the whole sequence starts over after losing a claim before answering ABORTED. */
const MAX_ROUNDS = 8;
/** The retry delay suggested with RESOURCE_EXHAUSTED. */
export const RETRY_AFTER_MS = 5_000;

/** Total weight of the packages, to the milligram (so 0.1 + 0.2 fits a 0.3 kg limit). */
export function totalPayloadKg(request: AssignDroneRequest): number {
  const sum = request.packages.reduce((acc, p) => acc + p.weightKg, 0);
  return Math.round(sum * 1e6) / 1e6;
}

function distanceToPickup(drone: Drone, pickup: Location): number {
  const at = whereIs(drone);
  return at ? distanceKm(at, pickup) : Number.POSITIVE_INFINITY;
}

/** Drones nearest to the pickup first; ties in id order. */
function byDistanceTo(pickup: Location) {
  return (a: Versioned<Drone>, b: Versioned<Drone>): number =>
    distanceToPickup(a.value, pickup) - distanceToPickup(b.value, pickup) || compareIds(a.value.droneId, b.value.droneId);
}

function ensurePayloadFits(fleet: readonly Versioned<Drone>[], request: AssignDroneRequest, payloadKg: number): void {
  const largest = fleet.reduce((max, d) => Math.max(max, d.value.maxPayloadKg), 0);
  if (payloadKg <= largest) return;
  const description = `total payload ${payloadKg} kg exceeds the largest drone payload of the fleet (${largest} kg); use a third-party carrier`;
  throw failedPrecondition(`delivery ${request.deliveryId}: ${description}`, [
    { type: "PAYLOAD", subject: `delivery:${request.deliveryId}`, description },
  ]);
}

export function newAssignment(request: AssignDroneRequest, drone: Drone, payloadKg: number, now: Date): Assignment {
  const pickup = request.pickup!;
  const dropoff = request.dropoff!;
  const plan = planFlight(drone, pickup, dropoff, now);
  return create(AssignmentSchema, {
    deliveryId: request.deliveryId,
    droneId: drone.droneId,
    ownerId: request.ownerId,
    pickup,
    dropoff,
    packageIds: request.packages.map((p) => p.packageId),
    payloadKg,
    state: AssignmentState.ACTIVE,
    plannedDistanceKm: plan.plannedDistanceKm,
    assignTime: timestampFromDate(now),
    pickupEta: plan.pickupEta,
    dropoffEta: plan.dropoffEta,
  });
}

export class DroneAssigner {
  constructor(
    private readonly store: DroneStore,
    private readonly options: AssignOptions,
  ) {}

  private readonly now = (): Date => this.options.now();

  async assign(request: AssignDroneRequest): Promise<AssignResult> {
    const deliveryId = request.deliveryId;
    const payloadKg = totalPayloadKg(request);
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      const existing = await this.store.getAssignment(deliveryId);
      if (existing) return this.withDrone(existing.value);

      const fleet = await this.store.fleet();
      ensurePayloadFits(fleet, request, payloadKg);
      const capable = fleet.filter((d) => d.value.maxPayloadKg >= payloadKg);

      let droneId = await this.claimNearest(capable, request);
      if (droneId === undefined) {
        const reclaimed = await reclaimOrphanedClaims(this.store, capable, this.options);
        if (reclaimed > 0) droneId = await this.claimNearest(await this.store.readDrones(capable.map((d) => d.value.droneId)), request);
      }
      if (droneId === undefined) {
        // A concurrent call for the same delivery may have taken the last free drone.
        const winner = await this.store.getAssignment(deliveryId);
        if (winner) return this.withDrone(winner.value);
        throw resourceExhausted(
          `no drone able to carry ${payloadKg} kg is free for delivery ${deliveryId}; retry later`,
          RETRY_AFTER_MS,
        );
      }

      const drone = await renewClaim(this.store, droneId, deliveryId, this.now);
      if (!drone) continue; // the claim was given up by a concurrent call in the meantime: start over

      const start = this.now();
      const assignment = newAssignment(request, drone, payloadKg, start);
      await this.store.indexOwnerMonth(request.ownerId, start.getUTCFullYear(), start.getUTCMonth() + 1, deliveryId);
      let result: AssignResult;
      try {
        await this.store.createAssignment(assignment);
        result = { assignment, drone };
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
        const winner = await this.store.getAssignment(deliveryId);
        if (!winner) continue;
        result = await this.withDrone(winner.value);
      }
      await this.releaseOtherClaims(fleet, deliveryId, droneId, result.assignment.droneId);
      return result;
    }
    throw aborted(`assigning a drone to delivery ${deliveryId} kept conflicting with concurrent calls; retry the call`);
  }

  /**
   * Claims a drone for the delivery among `capable` (a snapshot) and returns its id: one already
   * claimed for it if any, else the nearest available one this call manages to claim.
   */
  private async claimNearest(capable: readonly Versioned<Drone>[], request: AssignDroneRequest): Promise<string | undefined> {
    const deliveryId = request.deliveryId;
    const nearestFirst = [...capable].sort(byDistanceTo(request.pickup!));
    const held = nearestFirst.find((d) => isClaimedFor(d.value, deliveryId));
    if (held) return held.value.droneId;

    for (const candidate of nearestFirst) {
      if (candidate.value.status !== DroneStatus.AVAILABLE) continue;
      try {
        await this.store.updateDrone(claimedDrone(candidate.value, deliveryId, this.now()), candidate.revision);
        return candidate.value.droneId;
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
        const fresh = await this.store.getDrone(candidate.value.droneId);
        if (fresh && isClaimedFor(fresh.value, deliveryId)) return candidate.value.droneId;
      }
    }
    return undefined;
  }

  /**
   * Once the delivery's assignment exists, no other drone may stay claimed for it: frees the one
   * this call claimed (if the assignment uses another) and any seen claimed for it in the snapshot.
   */
  private async releaseOtherClaims(
    fleet: readonly Versioned<Drone>[],
    deliveryId: string,
    claimedId: string,
    assignedId: string,
  ): Promise<void> {
    const others = new Set(fleet.filter((d) => isClaimedFor(d.value, deliveryId)).map((d) => d.value.droneId));
    others.add(claimedId);
    others.delete(assignedId);
    for (const droneId of others) await releaseClaim(this.store, droneId, deliveryId, this.now);
  }

  private async withDrone(assignment: Assignment): Promise<AssignResult> {
    const drone = await this.store.getDrone(assignment.droneId);
    return { assignment, drone: drone?.value };
  }
}
