/**
 * The fleet as `AssignDrone` searches it, without reading the whole fleet per call.
 *
 * Each instance keeps an in-memory copy of the drone records, fed by a KV watch of `drone.*` (the
 * initial values, then every change made by any instance), and indexes it:
 *  - available drones in a grid of cells by location (`cellKm` on a side), so the nearest ones to
 *    a pickup are found by looking at the cells around it, ring by ring;
 *  - claimed drones by the delivery that holds them;
 *  - how many drones of each payload limit the fleet has.
 *
 * The index is a guide, never the authority: every change of a drone is still a revision-checked
 * write of its KV record, and a candidate whose index entry is stale just loses its claim.
 *
 * **Caught up before each search.** `sync()` asks JetStream for the bucket's last revision and, if
 * the watch is behind it, for the next drone write after what the watch delivered (usually two
 * small requests, whatever the fleet's size), and waits until the watch has delivered it. A
 * search after `sync()` therefore sees at least every drone write that completed before the call
 * began, as a full read of the fleet would.
 *
 * **Nearest, exactly.** A drone's position moves with its flight plan (a drone flying home is
 * available). An available drone is entered in every cell its remaining flight passes through
 * (sampled at half a cell), so wherever it is at the moment of a search, it is in the cell under
 * it. The search looks at rings of cells around the pickup; after ring r, every drone not seen yet
 * is at least a known distance away (r cells in latitude or longitude), so the candidates nearer
 * than that are final and are handed out nearest first (ties in id order), exactly as a sort of
 * the whole fleet would order them. A drone whose remaining path crosses more than
 * `MAX_CELLS_PER_DRONE` cells (a very long flight), or that has no position, is kept in a short
 * list looked at by every search. After `MAX_RINGS` rings without having seen every available
 * drone (free drones only far away), the rest are read from the whole index in memory.
 */
import type { KV, KvEntry, QueuedIterator } from "nats";
import type { KvRevisionProbe } from "../../lib/nats/kv.js";
import type { Logger } from "pino";
import { DroneStatus } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type { Versioned } from "../../lib/store/proto-kv-store.js";
import { positionOf, type DroneRecord } from "./drone-record.js";
import { pointBetween, distanceKm, EARTH_RADIUS_KM, type LatLon } from "./geo.js";
import { DRONE_KEYS, DRONE_PREFIX, compareIds, droneRecordOf } from "./store.js";

/** Cells a moving drone may be entered in before it goes to the list every search looks at. */
const MAX_CELLS_PER_DRONE = 512;
/** Rings of cells looked at before the rest of the available drones are read from memory. */
const MAX_RINGS = 48;
/** Delay before watching again after the watch ended unexpectedly. */
const REWATCH_MS = 500;
const KM_PER_DEGREE = (Math.PI * EARTH_RADIUS_KM) / 180;

export interface FleetIndexOptions {
  /** Side of a grid cell, in km (see `cellKmFor`). */
  readonly cellKm: number;
  /** Latitude the cells are square at (the fleet's home base). */
  readonly referenceLatitude: number;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * A cell side giving about four drones per cell when the fleet stands on its landing pads
 * (`fleetSize` drones spread over a disc of `spreadKm`), so a search looks at a few dozen drones
 * whatever the fleet's size. At least 50 m, at most 10 km.
 */
export function cellKmFor(fleetSize: number, spreadKm: number): number {
  const side = 2 * spreadKm * Math.sqrt(Math.PI / Math.max(1, fleetSize));
  return Math.min(10, Math.max(0.05, side));
}

/** What a search needs to know of the fleet; a full read of the fleet answers the same questions. */
export interface FleetView {
  /** The largest payload limit of the fleet (0 for no drone). */
  largestPayloadKg(): number;
  /** The drones claimed for `deliveryId` able to carry `payloadKg`. */
  heldFor(deliveryId: string, payloadKg: number): Versioned<DroneRecord>[];
  /** The available drones able to carry `payloadKg`, nearest to `pickup` first (at `atMs`), ties in id order. */
  nearest(pickup: LatLon, payloadKg: number, atMs: number): Iterable<Versioned<DroneRecord>>;
  /** The claimed drones able to carry `payloadKg` (candidates for reclaiming). */
  claimed(payloadKg: number): Versioned<DroneRecord>[];
}

const kmTo = (record: DroneRecord, pickup: LatLon, atMs: number): number => {
  const at = positionOf(record, atMs);
  return at ? distanceKm(at, pickup) : Number.POSITIVE_INFINITY;
};

interface Ranked {
  readonly entry: Versioned<DroneRecord>;
  readonly km: number;
}

const byKmThenId = (a: Ranked, b: Ranked): number => a.km - b.km || compareIds(a.entry.value.drone.droneId, b.entry.value.drone.droneId);

/** The records nearest to `pickup` first (where they are at `atMs`), ties in id order. */
export function nearestFirst(records: readonly Versioned<DroneRecord>[], pickup: LatLon, atMs: number): Versioned<DroneRecord>[] {
  return records
    .map((entry) => ({ entry, km: kmTo(entry.value, pickup, atMs) }))
    .sort(byKmThenId)
    .map((r) => r.entry);
}

/** A view of a full read of the fleet (`DroneStore.fleet()`): the search without an index. */
export function snapshotView(fleet: readonly Versioned<DroneRecord>[]): FleetView {
  return {
    largestPayloadKg: () => fleet.reduce((max, d) => Math.max(max, d.value.drone.maxPayloadKg), 0),
    heldFor: (deliveryId, payloadKg) =>
      fleet.filter(
        (d) => d.value.drone.status === DroneStatus.ASSIGNED && d.value.drone.deliveryId === deliveryId && d.value.drone.maxPayloadKg >= payloadKg,
      ),
    nearest: (pickup, payloadKg, atMs) =>
      nearestFirst(
        fleet.filter((d) => d.value.drone.status === DroneStatus.AVAILABLE && d.value.drone.maxPayloadKg >= payloadKg),
        pickup,
        atMs,
      ),
    claimed: (payloadKg) => fleet.filter((d) => d.value.drone.status === DroneStatus.ASSIGNED && d.value.drone.maxPayloadKg >= payloadKg),
  };
}

/** A view kept up to date in the background: `sync` waits until it has caught up with the bucket. */
export interface SyncedFleetView extends FleetView {
  /** True once the view holds every drone write completed before the call; false after `timeoutMs`. */
  sync(timeoutMs: number): Promise<boolean>;
}

interface Entry {
  readonly stored: Versioned<DroneRecord>;
  /** Grid cells the drone is entered in (available drones only). */
  readonly cells: readonly number[];
  /** In the list every search looks at. */
  readonly wide: boolean;
}

export class FleetIndex implements SyncedFleetView {
  private readonly entries = new Map<string, Entry>();
  private readonly grid = new Map<number, Set<string>>();
  private readonly wide = new Set<string>();
  private readonly byDelivery = new Map<string, Set<string>>();
  private readonly payloads = new Map<number, number>();
  private available = 0;
  private processed = 0;
  private waiters: { revision: number; resolve: () => void }[] = [];
  private watch: QueuedIterator<KvEntry> | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly latDeg: number;
  private readonly lonDeg: number;
  private readonly columns: number;

  constructor(
    private readonly kv: KV,
    private readonly probe: KvRevisionProbe,
    private readonly options: FleetIndexOptions,
  ) {
    this.latDeg = options.cellKm / KM_PER_DEGREE;
    const cos = Math.max(0.01, Math.cos((Math.min(89, Math.abs(options.referenceLatitude)) * Math.PI) / 180));
    this.columns = Math.max(1, Math.floor(360 / (this.latDeg / cos)));
    this.lonDeg = 360 / this.columns;
  }

  start(): void {
    this.running = this.watchLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.stop();
    await this.running;
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  /**
   * Waits until the index has seen every drone write that completed before the call: asks for the
   * bucket's last revision, then, while the watch is behind it, for the next drone write after
   * what the watch has delivered, and waits for that one. False after `timeoutMs`.
   */
  async sync(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const last = await this.probe.lastRevision();
    while (this.processed < last) {
      const next = await this.probe.nextRevision(this.processed + 1);
      if (next === 0 || next > last) return true;
      if (!(await this.waitFor(next, deadline - Date.now()))) return false;
    }
    return true;
  }

  private waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.processed >= revision) return Promise.resolve(true);
    if (timeoutMs <= 0 || this.stopped) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve(!this.stopped);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The watch

  private async watchLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        const watch = await this.kv.watch({ key: DRONE_KEYS });
        this.watch = watch;
        if (this.stopped) watch.stop();
        for await (const entry of watch) this.applyEntry(entry);
      } catch (error) {
        this.options.log.warn({ err: error }, "the drone index watch failed; watching again");
      }
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, REWATCH_MS).unref());
    }
  }

  /** Applies one watched change of a drone record (the watch calls it for every entry). */
  /** Applies one watched change of a drone record (the watch calls it for every entry). */
  applyEntry(entry: Pick<KvEntry, "key" | "revision" | "operation" | "value">): void {
    const droneId = entry.key.slice(DRONE_PREFIX.length);
    let stored: Versioned<DroneRecord> | undefined;
    try {
      stored = droneRecordOf(entry as KvEntry);
    } catch (error) {
      this.options.log.error({ err: error, key: entry.key }, "unreadable drone record; left out of the index");
    }
    const current = this.entries.get(droneId);
    // A replay after a rewatch may deliver an older value than the one held.
    if (!current || entry.revision >= current.stored.revision) {
      if (current) this.remove(droneId, current);
      if (stored) this.add(droneId, stored);
    }
    if (entry.revision > this.processed) {
      this.processed = entry.revision;
      if (this.waiters.length > 0) {
        const ready = this.waiters.filter((w) => w.revision <= this.processed);
        this.waiters = this.waiters.filter((w) => w.revision > this.processed);
        for (const w of ready) w.resolve();
      }
    }
  }

  private add(droneId: string, stored: Versioned<DroneRecord>): void {
    const drone = stored.value.drone;
    this.payloads.set(drone.maxPayloadKg, (this.payloads.get(drone.maxPayloadKg) ?? 0) + 1);
    let cells: number[] = [];
    let wide = false;
    if (drone.status === DroneStatus.AVAILABLE) {
      this.available++;
      const path = this.cellsOf(stored.value);
      if (path === undefined) wide = true;
      else cells = path;
      if (wide) this.wide.add(droneId);
      for (const cell of cells) {
        let set = this.grid.get(cell);
        if (!set) this.grid.set(cell, (set = new Set()));
        set.add(droneId);
      }
    } else if (drone.status === DroneStatus.ASSIGNED) {
      let set = this.byDelivery.get(drone.deliveryId);
      if (!set) this.byDelivery.set(drone.deliveryId, (set = new Set()));
      set.add(droneId);
    }
    this.entries.set(droneId, { stored, cells, wide });
  }

  private remove(droneId: string, entry: Entry): void {
    const drone = entry.stored.value.drone;
    const count = (this.payloads.get(drone.maxPayloadKg) ?? 1) - 1;
    if (count > 0) this.payloads.set(drone.maxPayloadKg, count);
    else this.payloads.delete(drone.maxPayloadKg);
    if (drone.status === DroneStatus.AVAILABLE) this.available--;
    for (const cell of entry.cells) {
      const set = this.grid.get(cell);
      set?.delete(droneId);
      if (set?.size === 0) this.grid.delete(cell);
    }
    if (entry.wide) this.wide.delete(droneId);
    const held = this.byDelivery.get(drone.deliveryId);
    if (held) {
      held.delete(droneId);
      if (held.size === 0) this.byDelivery.delete(drone.deliveryId);
    }
    this.entries.delete(droneId);
  }

  // ---------------------------------------------------------------------------------------------
  // The grid

  private row(latitude: number): number {
    return Math.floor((latitude + 90) / this.latDeg);
  }

  private column(longitude: number): number {
    const c = Math.floor((longitude + 180) / this.lonDeg);
    return ((c % this.columns) + this.columns) % this.columns;
  }

  private cellOf(p: LatLon): number {
    return this.row(p.latitude) * this.columns + this.column(p.longitude);
  }

  /**
   * The cells under the drone from now to the end of its flight (one cell for a drone standing
   * still); undefined when it has no position or its path crosses too many cells.
   */
  private cellsOf(record: DroneRecord): number[] | undefined {
    const nowMs = this.options.now();
    const here = positionOf(record, nowMs);
    if (!here) return undefined;
    const cells = new Set<number>([this.cellOf(here)]);
    const flight = record.flight;
    if (flight) {
      for (const leg of flight.legs) {
        if (leg.endMs <= nowMs) continue;
        const from = leg.startMs >= nowMs ? leg.from : here;
        const km = distanceKm(from, leg.to);
        // Samples at most half a cell apart: the path between two samples lies in the cells of
        // the box they span (at most 2 x 2 cells).
        const steps = Math.ceil(km / (this.options.cellKm / 2));
        if (steps > 4 * MAX_CELLS_PER_DRONE) return undefined;
        let prev = from;
        for (let i = 1; i <= steps; i++) {
          const next = i === steps ? leg.to : pointBetween(from, leg.to, i / steps);
          for (const lat of [prev.latitude, next.latitude]) {
            for (const lon of [prev.longitude, next.longitude]) cells.add(this.cellOf({ latitude: lat, longitude: lon }));
          }
          prev = next;
        }
        cells.add(this.cellOf(leg.to));
        if (cells.size > MAX_CELLS_PER_DRONE) return undefined;
      }
    }
    return [...cells];
  }

  /**
   * No drone in a cell more than `r` cells from the pickup's cell (in rows or columns) is nearer
   * than this (km): its latitude differs by more than r rows, or its longitude by more than r
   * columns while its latitude is within r + 1 rows of the pickup's.
   */
  private boundKm(pickup: LatLon, r: number): number {
    if (r <= 0) return 0;
    const latBound = r * this.latDeg * KM_PER_DEGREE;
    const maxLat = Math.min(90, Math.abs(pickup.latitude) + (r + 1) * this.latDeg);
    const dLon = Math.min(180, r * this.lonDeg);
    const lonBound =
      2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.cos((maxLat * Math.PI) / 180) * Math.sin((dLon * Math.PI) / 360)));
    return Math.min(latBound, lonBound);
  }

  // ---------------------------------------------------------------------------------------------
  // FleetView

  largestPayloadKg(): number {
    let max = 0;
    for (const kg of this.payloads.keys()) max = Math.max(max, kg);
    return max;
  }

  heldFor(deliveryId: string, payloadKg: number): Versioned<DroneRecord>[] {
    const ids = this.byDelivery.get(deliveryId);
    if (!ids) return [];
    return [...ids]
      .map((id) => this.entries.get(id)!.stored)
      .filter((s) => s.value.drone.maxPayloadKg >= payloadKg);
  }

  claimed(payloadKg: number): Versioned<DroneRecord>[] {
    const out: Versioned<DroneRecord>[] = [];
    for (const ids of this.byDelivery.values()) {
      for (const id of ids) {
        const stored = this.entries.get(id)!.stored;
        if (stored.value.drone.maxPayloadKg >= payloadKg) out.push(stored);
      }
    }
    return out.sort((a, b) => compareIds(a.value.drone.droneId, b.value.drone.droneId));
  }

  /** Every drone record the index holds, in id order. */
  records(): Versioned<DroneRecord>[] {
    return [...this.entries.values()].map((e) => e.stored).sort((a, b) => compareIds(a.value.drone.droneId, b.value.drone.droneId));
  }

  *nearest(pickup: LatLon, payloadKg: number, atMs: number): Generator<Versioned<DroneRecord>> {
    const seen = new Set<string>();
    let pending: Ranked[] = [];
    const consider = (id: string): void => {
      if (seen.has(id)) return;
      seen.add(id);
      const stored = this.entries.get(id)?.stored;
      if (!stored || stored.value.drone.status !== DroneStatus.AVAILABLE || stored.value.drone.maxPayloadKg < payloadKg) return;
      pending.push({ entry: stored, km: kmTo(stored.value, pickup, atMs) });
    };
    for (const id of this.wide) consider(id);
    const row0 = this.row(pickup.latitude);
    const col0 = this.column(pickup.longitude);
    const rows = Math.ceil(180 / this.latDeg) + 1;
    const coveredAll = (r: number): boolean => 2 * r + 1 >= rows && 2 * r + 1 >= this.columns;
    for (let r = 0; ; r++) {
      if (seen.size >= this.available || r > MAX_RINGS || coveredAll(r - 1)) {
        // Every available drone seen (or the rest are far): the others from memory, then done.
        if (seen.size < this.available) for (const id of this.entries.keys()) consider(id);
        pending.sort(byKmThenId);
        for (const p of pending) yield p.entry;
        return;
      }
      for (const cell of this.ring(row0, col0, r)) {
        const ids = this.grid.get(cell);
        if (ids) for (const id of [...ids]) consider(id);
      }
      // Every drone not seen yet is in a cell more than r cells away in latitude or longitude.
      const bound = this.boundKm(pickup, r);
      pending.sort(byKmThenId);
      const ready = pending.filter((p) => p.km < bound);
      if (ready.length === 0) continue;
      pending = pending.slice(ready.length);
      for (const p of ready) yield p.entry;
    }
  }

  /** The cells at Chebyshev distance exactly `r` from (row0, col0), each once. */
  private *ring(row0: number, col0: number, r: number): Generator<number> {
    const rows = Math.ceil(180 / this.latDeg) + 1;
    const seenCols = new Set<number>();
    const cols: number[] = [];
    for (let dc = -r; dc <= r; dc++) {
      const c = (((col0 + dc) % this.columns) + this.columns) % this.columns;
      if (!seenCols.has(c)) {
        seenCols.add(c);
        cols.push(c);
      }
    }
    for (let dr = -r; dr <= r; dr++) {
      const row = row0 + dr;
      if (row < 0 || row >= rows) continue;
      const edge = dr === -r || dr === r;
      if (edge) {
        for (const c of cols) yield row * this.columns + c;
      } else {
        const left = (((col0 - r) % this.columns) + this.columns) % this.columns;
        const right = (((col0 + r) % this.columns) + this.columns) % this.columns;
        yield row * this.columns + left;
        if (right !== left) yield row * this.columns + right;
      }
    }
  }
}

