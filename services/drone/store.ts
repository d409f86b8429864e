/**
 * The Drone service's own data, in one JetStream KV bucket `drones`:
 *
 *   drone.<droneId>                                  a drone record: the `Drone` (status, claim,
 *                                                    stage, position, limits) and its flight plan
 *                                                    (see drone-record.ts)
 *   assignment.<deliveryId>                          an `Assignment`, the record of one delivery
 *   owner.<ownerKey>.<yyyy>-<mm>.<deliveryId>        index: the deliveries an owner started in a
 *                                                    month (value: the delivery id), read by
 *                                                    GetUtilization
 *   simulator.leader                                 the lease of the instance that flies the
 *                                                    drones (see leader-lease.ts)
 *
 * `<ownerKey>` is the owner id with '.' written as '=' ('=' never occurs in an id), so an owner id
 * stays one key token. Every write is revision-checked except the index entries, which are
 * write-once facts and safe to repeat.
 */
import type { JetStreamClient, KV, KvEntry } from "nats";
import { AssignmentSchema, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { openBucket } from "../../lib/nats/kv.js";
import { assertKey, ProtoKvStore, type Versioned } from "../../lib/store/proto-kv-store.js";
import { decodeDroneRecord, encodeDroneRecord, type DroneRecord } from "./drone-record.js";

export const DRONES_BUCKET = "drones";

export const DRONE_PREFIX = "drone.";
const ASSIGNMENT_PREFIX = "assignment.";
const OWNER_PREFIX = "owner.";

export const droneKey = (droneId: string): string => `${DRONE_PREFIX}${droneId}`;
/** The key filter matching every drone record. */
export const DRONE_KEYS = `${DRONE_PREFIX}*`;
export const LEADER_KEY = "simulator.leader";
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

/** A stored drone record from a KV entry; undefined for a deleted key. */
export function droneRecordOf(entry: KvEntry | null): Versioned<DroneRecord> | undefined {
  if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
  return { value: decodeDroneRecord(entry.value), revision: entry.revision };
}

export class DroneStore {
  readonly assignments: ProtoKvStore<typeof AssignmentSchema>;

  constructor(readonly kv: KV) {
    this.assignments = new ProtoKvStore(kv, AssignmentSchema);
  }

  async getDrone(droneId: string): Promise<Versioned<DroneRecord> | undefined> {
    return droneRecordOf(await this.kv.get(assertKey(droneKey(droneId))));
  }

  /** Stores a new drone; throws a revision conflict (or "exists") when it is already there. */
  createDrone(record: DroneRecord): Promise<number> {
    return this.kv.create(assertKey(droneKey(record.drone.droneId)), encodeDroneRecord(record));
  }

  /** Replaces a drone record read at `revision`; throws a revision conflict when it moved on. */
  updateDrone(record: DroneRecord, revision: number): Promise<number> {
    return this.kv.update(assertKey(droneKey(record.drone.droneId)), encodeDroneRecord(record), revision);
  }

  /**
   * The keys matching `filter`, each once: a key written while the listing runs is delivered again
   * by the listing, and drone records change often while drones fly.
   */
  private async keys(filter: string): Promise<string[]> {
    const out = new Set<string>();
    for await (const key of await this.kv.keys(filter)) out.add(key);
    return [...out];
  }

  /** Every drone id, in id order. */
  async droneIds(): Promise<string[]> {
    const keys = await this.keys(DRONE_KEYS);
    return keys.map((k) => k.slice(DRONE_PREFIX.length)).sort(compareIds);
  }

  /** The drones with these ids (missing ones left out), in the order given. */
  readDrones(droneIds: readonly string[]): Promise<Versioned<DroneRecord>[]> {
    return readAll(droneIds, (id) => this.getDrone(id));
  }

  /** The whole fleet, in id order. */
  async fleet(): Promise<Versioned<DroneRecord>[]> {
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
    const keys = await this.keys(`${prefix}*`);
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
