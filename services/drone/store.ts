/**
 * The Drone service's own data, in one JetStream KV bucket `drones`:
 *
 *   drone.<droneId>                                  a `Drone` (status, claim, position, limits)
 *   assignment.<deliveryId>                          an `Assignment`, the record of one delivery
 *   owner.<ownerKey>.<yyyy>-<mm>.<deliveryId>        index: the deliveries an owner started in a
 *                                                    month (value: the delivery id), read by
 *                                                    GetUtilization
 *
 * `<ownerKey>` is the owner id with '.' written as '=' ('=' never occurs in an id), so an owner id
 * stays one key token. Every write is revision-checked except the index entries, which are
 * write-once facts and safe to repeat.
 */
import type { JetStreamClient, KV } from "nats";
import { AssignmentSchema, DroneSchema, type Assignment, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { openBucket } from "../../lib/nats/kv.js";
import { ProtoKvStore, type UNCHANGED, type Versioned } from "../../lib/store/proto-kv-store.js";

export const DRONES_BUCKET = "drones";

const DRONE_PREFIX = "drone.";
const ASSIGNMENT_PREFIX = "assignment.";
const OWNER_PREFIX = "owner.";

export const droneKey = (droneId: string): string => `${DRONE_PREFIX}${droneId}`;
export const assignmentKey = (deliveryId: string): string => `${ASSIGNMENT_PREFIX}${deliveryId}`;

/** A calendar month as it appears in index keys: `2026-03`. */
export function monthToken(year: number, month: number): string {
  return `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}`;
}

function ownerToken(ownerId: string): string {
  return ownerId.replaceAll(".", "=");
}

export function ownerMonthKey(ownerId: string, year: number, month: number, deliveryId: string): string {
  return `${OWNER_PREFIX}${ownerToken(ownerId)}.${monthToken(year, month)}.${deliveryId}`;
}

/** Reads many keys at once, a bounded number in flight. */
async function readAll<T>(keys: readonly string[], read: (key: string) => Promise<T | undefined>, inFlight = 64): Promise<T[]> {
  const out: (T | undefined)[] = new Array(keys.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const index = next++;
      out[index] = await read(keys[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, keys.length) }, worker));
  return out.filter((v): v is T => v !== undefined);
}

export class DroneStore {
  readonly drones: ProtoKvStore<typeof DroneSchema>;
  readonly assignments: ProtoKvStore<typeof AssignmentSchema>;

  constructor(readonly kv: KV) {
    this.drones = new ProtoKvStore(kv, DroneSchema);
    this.assignments = new ProtoKvStore(kv, AssignmentSchema);
  }

  getDrone(droneId: string): Promise<Versioned<Drone> | undefined> {
    return this.drones.get(droneKey(droneId));
  }

  /** Replaces a drone read at `revision`; throws a revision conflict when it moved on. */
  updateDrone(drone: Drone, revision: number): Promise<number> {
    return this.drones.update(droneKey(drone.droneId), drone, revision);
  }

  mutateDrone(droneId: string, change: (current: Drone | undefined) => Drone | typeof UNCHANGED) {
    return this.drones.mutate(droneKey(droneId), change);
  }

  /** Every drone id, in id order. */
  async droneIds(): Promise<string[]> {
    const keys = await this.drones.keys(`${DRONE_PREFIX}*`);
    return keys.map((k) => k.slice(DRONE_PREFIX.length)).sort(compareIds);
  }

  /** The drones with these ids (missing ones left out), in the order given. */
  readDrones(droneIds: readonly string[]): Promise<Versioned<Drone>[]> {
    return readAll(droneIds, (id) => this.getDrone(id));
  }

  /** The whole fleet, in id order. */
  async fleet(): Promise<Versioned<Drone>[]> {
    return this.readDrones(await this.droneIds());
  }

  getAssignment(deliveryId: string): Promise<Versioned<Assignment> | undefined> {
    return this.assignments.get(assignmentKey(deliveryId));
  }

  /** Stores a new assignment; throws a revision conflict when the delivery already has one. */
  createAssignment(assignment: Assignment): Promise<number> {
    return this.assignments.create(assignmentKey(assignment.deliveryId), assignment);
  }

  /** Replaces an assignment read at `revision`; throws a revision conflict when it moved on. */
  updateAssignment(assignment: Assignment, revision: number): Promise<number> {
    return this.assignments.update(assignmentKey(assignment.deliveryId), assignment, revision);
  }

  readAssignments(deliveryIds: readonly string[]): Promise<Versioned<Assignment>[]> {
    return readAll(deliveryIds, (id) => this.getAssignment(id));
  }

  /** Records that `deliveryId` of `ownerId` started in the given month (idempotent). */
  async indexOwnerMonth(ownerId: string, year: number, month: number, deliveryId: string): Promise<void> {
    await this.kv.put(ownerMonthKey(ownerId, year, month, deliveryId), new TextEncoder().encode(deliveryId));
  }

  /** The deliveries indexed for an owner and month. */
  async ownerMonthDeliveryIds(ownerId: string, year: number, month: number): Promise<string[]> {
    const prefix = `${OWNER_PREFIX}${ownerToken(ownerId)}.${monthToken(year, month)}.`;
    const keys = await this.drones.keys(`${prefix}*`);
    return keys.map((k) => k.slice(prefix.length)).sort(compareIds);
  }
}

/** Plain code-unit order, the order of ids everywhere in this service. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function openDroneStore(js: JetStreamClient): Promise<DroneStore> {
  const kv = await openBucket(js, DRONES_BUCKET, {
    description: "Drone service: the fleet, assignments by delivery id, and the owner-month index",
  });
  return new DroneStore(kv);
}
