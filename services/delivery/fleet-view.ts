/**
 * Every owner's deliveries at once, for the operators' ListAllDeliveries and GetStageCounts,
 * without reading the whole bucket per call.
 *
 * Each instance keeps an in-memory copy of the delivery records, fed by a KV watch of
 * `delivery.*` (the initial values, then every change made by any instance), with the number of
 * deliveries at each stage kept as records change. A listing sorts the records by their index
 * position (newest first, as an owner's listing) once per change, not per call; counting is a
 * copy of the counters. Memory grows with the number of deliveries kept in the bucket (a record
 * is about a kilobyte): thousands to tens of thousands are fine.
 *
 * **Caught up before each answer.** `sync()` asks JetStream for the bucket's last revision and,
 * while the watch is behind it, for the next delivery-record write after what the watch delivered
 * (usually two small requests), and waits until the watch has delivered it: an answer sees at
 * least every delivery write that completed before the call began.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { KV, KvEntry, QueuedIterator } from "nats";
import type { KvRevisionProbe } from "../../lib/nats/kv.js";
import type { Logger } from "pino";
import { DeliverySchema, DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DELIVERY_FILTER, deliveryIdOfKey } from "./keys.js";
import { positionOf } from "./owner-index.js";

/** Delay before watching again after the watch ended unexpectedly. */
const REWATCH_MS = 1_000;
/** JetStream API error code: no message found. */

interface Entry {
  readonly delivery: Delivery;
  readonly revision: number;
  readonly position: string;
}

export interface FleetPage {
  readonly deliveries: Delivery[];
  /** Position of the last delivery of the page when more follow; undefined on the last page. */
  readonly lastPosition: string | undefined;
}

export interface StageCounts {
  readonly counts: ReadonlyMap<DeliveryStage, number>;
  readonly total: number;
  readonly recentFailures: Delivery[];
}


export class DeliveryFleetView {
  private readonly entries = new Map<string, Entry>();
  private readonly stageCounts = new Map<DeliveryStage, number>();
  /** Entries by position (newest first); rebuilt on the first read after a change. */
  private sorted: Entry[] | undefined;
  private processed = 0;
  private waiters: { revision: number; resolve: () => void }[] = [];
  private watch: QueuedIterator<KvEntry> | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly kv: KV,
    private readonly probe: KvRevisionProbe,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.running ??= this.watchLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.stop();
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters = [];
    await this.running;
  }

  /** Waits until the view has every delivery write made before the call; false after `timeoutMs`. */
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
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve(this.processed >= revision);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  private async watchLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        const watch = await this.kv.watch({ key: DELIVERY_FILTER });
        this.watch = watch;
        if (this.stopped) watch.stop();
        for await (const entry of watch) this.apply(entry);
      } catch (error) {
        this.log.warn({ err: error }, "the delivery view's watch failed; watching again");
      }
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, REWATCH_MS).unref());
    }
  }

  /** Applies one watched change of a delivery record. */
  apply(entry: Pick<KvEntry, "key" | "revision" | "operation" | "value">): void {
    const deliveryId = deliveryIdOfKey(entry.key);
    const current = deliveryId === undefined ? undefined : this.entries.get(deliveryId);
    // A replay after a rewatch may deliver an older value than the one held.
    if (deliveryId !== undefined && (!current || entry.revision >= current.revision)) {
      if (current) this.count(current.delivery.stage, -1);
      this.entries.delete(deliveryId);
      if (entry.operation === "PUT" && entry.value.length > 0) {
        try {
          const delivery = fromBinary(DeliverySchema, entry.value);
          this.entries.set(deliveryId, { delivery, revision: entry.revision, position: positionOf(delivery) });
          this.count(delivery.stage, 1);
        } catch (error) {
          this.log.error({ err: error, key: entry.key }, "unreadable delivery record; left out of the delivery view");
        }
      }
      this.sorted = undefined;
    }
    this.processed = Math.max(this.processed, entry.revision);
    const ready = this.waiters.filter((w) => w.revision <= this.processed);
    if (ready.length > 0) {
      this.waiters = this.waiters.filter((w) => w.revision > this.processed);
      for (const waiter of ready) waiter.resolve();
    }
  }

  private count(stage: DeliveryStage, delta: number): void {
    const n = (this.stageCounts.get(stage) ?? 0) + delta;
    if (n === 0) this.stageCounts.delete(stage);
    else this.stageCounts.set(stage, n);
  }

  private bySorted(): Entry[] {
    this.sorted ??= [...this.entries.values()].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
    return this.sorted;
  }

  /** Up to `pageSize` deliveries after `after` (a position), newest first, at `stage` unless UNSPECIFIED. */
  page(stage: DeliveryStage, pageSize: number, after: string | undefined): FleetPage {
    const sorted = this.bySorted();
    // Binary search for the first position after `after`.
    let low = 0;
    if (after !== undefined) {
      let high = sorted.length;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if (sorted[mid]!.position <= after) low = mid + 1;
        else high = mid;
      }
    }
    const deliveries: Delivery[] = [];
    let lastPosition: string | undefined;
    for (let i = low; i < sorted.length; i++) {
      const entry = sorted[i]!;
      if (stage !== DeliveryStage.UNSPECIFIED && entry.delivery.stage !== stage) continue;
      if (deliveries.length === pageSize) {
        lastPosition = positionOf(deliveries[deliveries.length - 1]!);
        break;
      }
      deliveries.push(entry.delivery);
    }
    return { deliveries, lastPosition };
  }

  /** Deliveries by stage, and the `failures` latest failed ones (by update time, newest first). */
  counts(failures: number): StageCounts {
    const failed: Delivery[] = [];
    for (const { delivery } of this.entries.values()) if (delivery.stage === DeliveryStage.FAILED) failed.push(delivery);
    const updated = (d: Delivery) => (d.updateTime ? timestampMs(d.updateTime) : 0);
    failed.sort((a, b) => updated(b) - updated(a) || (a.deliveryId < b.deliveryId ? -1 : 1));
    return { counts: new Map(this.stageCounts), total: this.entries.size, recentFailures: failed.slice(0, failures) };
  }
}
