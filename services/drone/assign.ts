/**
 * Assigning a drone to a delivery, safe against races and crashes without transactions:
 *
 *  1. An existing assignment record of the delivery is the answer, whatever its state.
 *  2. Payload heavier than every drone of the fleet can carry: FAILED_PRECONDITION.
 *  3. Claim a drone: reuse one already claimed for this delivery (left by a crashed or concurrent
 *     call), else claim the nearest available capable drone with a revision-checked write, moving
 *     on to the next nearest when another call claimed it first (a drone whose record merely moved
 *     on, still free, is tried again on its fresh record). None free: orphaned claims are
 *     reclaimed and the search repeats once; still none: RESOURCE_EXHAUSTED.
 *  4. Renew a claim found held (one this call has just written is fresh), then create the
 *     assignment record (create-only: the one write that decides which call wins for this
 *     delivery).
 *  5. Lost that create to a concurrent call: answer the winner's assignment, and free the drone
 *     this call claimed if the winner uses another one. Either way, free any other drone still
 *     claimed for this delivery.
 * A crash after step 3 leaves the drone claimed for the delivery: a retry reuses it (step 3); if no
 * retry comes, the claim expires after the lease and `reclaimOrphanedClaims` frees it.
 *
 * The fleet is searched through the instance's `FleetIndex` (fleet-index.ts), caught up with the
 * bucket at the start of each round, so a call reads only the drones it tries; without an index,
 * or when it cannot catch up in time, through a full read of the fleet. Either way the choice is
 * the same, and every claim is a revision-checked write of the drone record.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AssignmentSchema, AssignmentState, DroneStatus, FlightStage, type Assignment, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type { AssignDroneRequest } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { aborted, failedPrecondition, resourceExhausted } from "../../lib/grpc/errors.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { claimedDrone, isClaimedFor, releaseClaim, renewClaim, startFlight } from "./claims.js";
import { droneAt, type DroneRecord } from "./drone-record.js";
import { flightDistanceKm, transitionMs, transitionOf, type FlightTiming } from "./flight.js";
import { deliveryFlightFor, needsFlightStart, withDeliveryFlight } from "./flight-start.js";
import { reclaimOrphanedClaims } from "./reclaim.js";
import type { DroneStore } from "./store.js";
import { nearestFirst, snapshotView, type FleetView, type SyncedFleetView } from "./fleet-index.js";
import type { Logger } from "pino";

export interface AssignOptions {
  readonly claimLeaseMs: number;
  readonly timing: FlightTiming;
  readonly now: () => Date;
  /** The instance's index of the fleet; none: every round reads the whole fleet. */
  readonly index?: SyncedFleetView;
  /** How long a round waits for the index to catch up before reading the whole fleet instead. */
  readonly indexSyncMs?: number;
  readonly log?: Logger;
}

/** Default of `indexSyncMs`. */
const INDEX_SYNC_MS = 2_000;

export interface AssignResult {
  readonly assignment: Assignment;
  readonly drone: Drone | undefined;
}

/** How often the whole sequence starts over after losing a claim before answering ABORTED. */
const MAX_ROUNDS = 8;
/** How often one drone's claim is tried on its fresh record while it stays free. */
const CLAIM_ATTEMPTS = 3;
/** The retry delay suggested with RESOURCE_EXHAUSTED. */
export const RETRY_AFTER_MS = 5_000;

/** Total weight of the packages, to the milligram (so 0.1 + 0.2 fits a 0.3 kg limit). */
export function totalPayloadKg(request: AssignDroneRequest): number {
  const sum = request.packages.reduce((acc, p) => acc + p.weightKg, 0);
  return Math.round(sum * 1e6) / 1e6;
}

function ensurePayloadFits(view: FleetView, request: AssignDroneRequest, payloadKg: number): void {
  const largest = view.largestPayloadKg();
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

/** A drone claimed for a delivery; `written` when this call wrote the claim (with the revision it got). */
interface Claim {
  readonly droneId: string;
  readonly written?: Versioned<DroneRecord>;
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

      let view = await this.fleetView();
      ensurePayloadFits(view, request, payloadKg);

      let claim = await this.claimNearest(view, request, payloadKg);
      if (claim === undefined) {
        const reclaimed = await reclaimOrphanedClaims(this.store, view.claimed(payloadKg), this.options);
        if (reclaimed > 0) {
          view = await this.fleetView();
          claim = await this.claimNearest(view, request, payloadKg);
        }
      }
      if (claim === undefined) {
        // A concurrent call for the same delivery may have taken the last free drone.
        const winner = await this.store.getAssignment(deliveryId);
        if (winner) return this.withDrone(winner.value);
        throw resourceExhausted(
          `no drone able to carry ${payloadKg} kg is free for delivery ${deliveryId}; retry later`,
          RETRY_AFTER_MS,
        );
      }
      const droneId = claim.droneId;

      // A claim this call has just written is fresh; one found held for the delivery (left by a
      // crashed or concurrent call) is renewed first.
      const claimed = claim.written ?? (await this.renewed(droneId, deliveryId));
      if (!claimed) continue; // the claim was given up by a concurrent call in the meantime: start over
      const record = claimed.value;

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
      await this.releaseOtherClaims(view, deliveryId, droneId, decided.droneId);
      return this.withDrone(decided, decided.droneId === droneId ? claimed : undefined);
    }
    throw aborted(`assigning a drone to delivery ${deliveryId} kept conflicting with concurrent calls; retry the call`);
  }

  /**
   * The fleet to search: the index once it has caught up with every drone write made before this
   * moment, else (no index, or it did not catch up within `indexSyncMs`) a full read of the fleet.
   */
  private async fleetView(): Promise<FleetView> {
    const index = this.options.index;
    if (index) {
      if (await index.sync(this.options.indexSyncMs ?? INDEX_SYNC_MS)) return index;
      this.options.log?.warn("the drone index did not catch up in time; reading the whole fleet");
    }
    return snapshotView(await this.store.fleet());
  }

  /**
   * Claims a drone for the delivery and returns its id: one already claimed for it if any (the
   * nearest), else the nearest available capable one this call manages to claim.
   */
  private async claimNearest(view: FleetView, request: AssignDroneRequest, payloadKg: number): Promise<Claim | undefined> {
    const deliveryId = request.deliveryId;
    const pickup = request.pickup!;
    const atMs = this.now().getTime();
    const held = nearestFirst(view.heldFor(deliveryId, payloadKg), pickup, atMs)[0];
    if (held) return { droneId: held.value.drone.droneId };

    for (const candidate of view.nearest(pickup, payloadKg, atMs)) {
      const claim = await this.tryClaim(candidate, deliveryId, payloadKg);
      if (claim) return claim;
    }
    return undefined;
  }

  /** The drone's claim for the delivery renewed, with the revision written; undefined when no longer held. */
  private renewed(droneId: string, deliveryId: string): Promise<Versioned<DroneRecord> | undefined> {
    return renewClaim(this.store, droneId, deliveryId, this.now);
  }

  /**
   * Claims `candidate` for the delivery with a write checked against its revision. When the record
   * changed since it was indexed (or read) and is still free, as a drone flying home is written at
   * every tick, the claim is tried again on the fresh record; a drone another call claimed is left.
   */
  private async tryClaim(candidate: Versioned<DroneRecord>, deliveryId: string, payloadKg: number): Promise<Claim | undefined> {
    let current: Versioned<DroneRecord> | undefined = candidate;
    for (let attempt = 1; current && attempt <= CLAIM_ATTEMPTS; attempt++) {
      const drone = current.value.drone;
      if (isClaimedFor(drone, deliveryId)) return { droneId: drone.droneId };
      if (drone.status !== DroneStatus.AVAILABLE || drone.maxPayloadKg < payloadKg) return undefined;
      const claimed = claimedDrone(current.value, deliveryId, this.now());
      try {
        return { droneId: drone.droneId, written: { value: claimed, revision: await this.store.updateDrone(claimed, current.revision) } };
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
      }
      current = await this.store.getDrone(drone.droneId);
    }
    return undefined;
  }

  /**
   * Once the delivery's assignment exists, no other drone may stay claimed for it: frees the one
   * this call claimed (if the assignment uses another) and any seen claimed for it in the snapshot.
   */
  private async releaseOtherClaims(view: FleetView, deliveryId: string, claimedId: string, assignedId: string): Promise<void> {
    const others = new Set(view.heldFor(deliveryId, 0).map((d) => d.value.drone.droneId));
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
  private async withDrone(assignment: Assignment, claimed?: Versioned<DroneRecord>): Promise<AssignResult> {
    let record: DroneRecord | undefined;
    if (claimed && needsFlightStart(claimed.value, assignment)) {
      // The drone as this call claimed it, at the revision it wrote: the flight starts with one
      // write checked against that revision (a change in between reads the drone again below).
      const started = withDeliveryFlight(claimed.value, assignment, this.options.timing, this.now().getTime());
      try {
        await this.store.updateDrone(started, claimed.revision);
        record = started;
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
      }
    }
    if (!record && assignment.state === AssignmentState.ACTIVE) record = await startFlight(this.store, assignment, this.options.timing, this.now);
    record ??= (await this.store.getDrone(assignment.droneId))?.value;
    return { assignment, drone: record ? droneAt(record, this.now().getTime()) : undefined };
  }
}
