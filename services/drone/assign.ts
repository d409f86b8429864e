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
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { AssignmentSchema, AssignmentState, DroneStatus, FlightStage, type Assignment, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type { AssignDroneRequest } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { aborted, failedPrecondition, resourceExhausted } from "../../lib/grpc/errors.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { claimedDrone, isClaimedFor, releaseClaim, renewClaim, startFlight } from "./claims.js";
import { droneAt, positionOf, type DroneRecord } from "./drone-record.js";
import { flightDistanceKm, transitionMs, transitionOf, type FlightTiming } from "./flight.js";
import { deliveryFlightFor } from "./flight-start.js";
import { distanceKm } from "./geo.js";
import { reclaimOrphanedClaims } from "./reclaim.js";
import { compareIds, type DroneStore } from "./store.js";

export interface AssignOptions {
  readonly claimLeaseMs: number;
  readonly timing: FlightTiming;
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

function distanceToPickup(record: DroneRecord, pickup: Location, atMs: number): number {
  const at = positionOf(record, atMs);
  return at ? distanceKm(at, pickup) : Number.POSITIVE_INFINITY;
}

/** Drones nearest to the pickup first (where they are at `atMs`); ties in id order. */
function nearestFirst(drones: readonly Versioned<DroneRecord>[], pickup: Location, atMs: number): Versioned<DroneRecord>[] {
  return drones
    .map((d) => ({ d, km: distanceToPickup(d.value, pickup, atMs) }))
    .sort((a, b) => a.km - b.km || compareIds(a.d.value.drone.droneId, b.d.value.drone.droneId))
    .map((x) => x.d);
}

function ensurePayloadFits(fleet: readonly Versioned<DroneRecord>[], request: AssignDroneRequest, payloadKg: number): void {
  const largest = fleet.reduce((max, d) => Math.max(max, d.value.drone.maxPayloadKg), 0);
  if (payloadKg <= largest) return;
  const description = `total payload ${payloadKg} kg exceeds the largest drone payload of the fleet (${largest} kg); use a third-party carrier`;
  throw failedPrecondition(`delivery ${request.deliveryId}: ${description}`, [
    { type: "PAYLOAD", subject: `delivery:${request.deliveryId}`, description },
  ]);
}

/** The assignment record of `request` with the drone (as claimed) assigned at `now`. */
export function newAssignment(request: AssignDroneRequest, record: DroneRecord, payloadKg: number, now: Date, timing: FlightTiming): Assignment {
  const pickup = request.pickup!;
  const dropoff = request.dropoff!;
  const flight = deliveryFlightFor(record, { deliveryId: request.deliveryId, pickup, dropoff }, now.getTime(), timing);
  const etaOf = (stage: FlightStage) => timestampFromMs(transitionMs(flight, transitionOf(flight, stage)!));
  return create(AssignmentSchema, {
    deliveryId: request.deliveryId,
    droneId: record.drone.droneId,
    ownerId: request.ownerId,
    pickup,
    dropoff,
    packageIds: request.packages.map((p) => p.packageId),
    payloadKg,
    state: AssignmentState.ACTIVE,
    plannedDistanceKm: flightDistanceKm(flight),
    assignTime: timestampFromDate(now),
    pickupEta: etaOf(FlightStage.PICKING_UP),
    dropoffEta: etaOf(FlightStage.DROPPING_OFF),
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
      const capable = fleet.filter((d) => d.value.drone.maxPayloadKg >= payloadKg);

      let droneId = await this.claimNearest(capable, request);
      if (droneId === undefined) {
        const reclaimed = await reclaimOrphanedClaims(this.store, capable, this.options);
        if (reclaimed > 0) droneId = await this.claimNearest(await this.store.readDrones(capable.map((d) => d.value.drone.droneId)), request);
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

      const record = await renewClaim(this.store, droneId, deliveryId, this.now);
      if (!record) continue; // the claim was given up by a concurrent call in the meantime: start over

      const start = this.now();
      const assignment = newAssignment(request, record, payloadKg, start, this.options.timing);
      await this.store.indexOwnerMonth(request.ownerId, start.getUTCFullYear(), start.getUTCMonth() + 1, deliveryId);
      let won = true;
      try {
        await this.store.createAssignment(assignment);
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
        won = false;
      }
      const decided = won ? assignment : (await this.store.getAssignment(deliveryId))?.value;
      if (!decided) continue;
      await this.releaseOtherClaims(fleet, deliveryId, droneId, decided.droneId);
      return this.withDrone(decided);
    }
    throw aborted(`assigning a drone to delivery ${deliveryId} kept conflicting with concurrent calls; retry the call`);
  }

  /**
   * Claims a drone for the delivery among `capable` (a snapshot) and returns its id: one already
   * claimed for it if any, else the nearest available one this call manages to claim.
   */
  private async claimNearest(capable: readonly Versioned<DroneRecord>[], request: AssignDroneRequest): Promise<string | undefined> {
    const deliveryId = request.deliveryId;
    const candidates = nearestFirst(capable, request.pickup!, this.now().getTime());
    const held = candidates.find((d) => isClaimedFor(d.value.drone, deliveryId));
    if (held) return held.value.drone.droneId;

    for (const candidate of candidates) {
      const droneId = candidate.value.drone.droneId;
      if (candidate.value.drone.status !== DroneStatus.AVAILABLE) continue;
      try {
        await this.store.updateDrone(claimedDrone(candidate.value, deliveryId, this.now()), candidate.revision);
        return droneId;
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
        const fresh = await this.store.getDrone(droneId);
        if (fresh && isClaimedFor(fresh.value.drone, deliveryId)) return droneId;
      }
    }
    return undefined;
  }

  /**
   * Once the delivery's assignment exists, no other drone may stay claimed for it: frees the one
   * this call claimed (if the assignment uses another) and any seen claimed for it in the snapshot.
   */
  private async releaseOtherClaims(
    fleet: readonly Versioned<DroneRecord>[],
    deliveryId: string,
    claimedId: string,
    assignedId: string,
  ): Promise<void> {
    const others = new Set(fleet.filter((d) => isClaimedFor(d.value.drone, deliveryId)).map((d) => d.value.drone.droneId));
    others.add(claimedId);
    others.delete(assignedId);
    // These drones never flew this delivery: freeing them leaves their flights as they are.
    const options = { turnHome: false, timing: this.options.timing };
    for (const droneId of others) await releaseClaim(this.store, droneId, deliveryId, this.now, options);
  }

  /**
   * The answer for a decided assignment: the drone as it is now, with its delivery flight started
   * if the assignment is active and the flight was not started yet (this call's own start, or one
   * a crash interrupted).
   */
  private async withDrone(assignment: Assignment): Promise<AssignResult> {
    let record: DroneRecord | undefined;
    if (assignment.state === AssignmentState.ACTIVE) record = await startFlight(this.store, assignment, this.options.timing, this.now);
    record ??= (await this.store.getDrone(assignment.droneId))?.value;
    return { assignment, drone: record ? droneAt(record, this.now().getTime()) : undefined };
  }
}
