/**
 * The carrier simulator: while this instance holds the simulator lease (lib/nats/leader-lease.ts,
 * key `simulator.lease` of the bookings bucket), it publishes the outside carriers' progress with
 * every booking, stage by stage, as the booking's plan (carrier-plan.ts) makes each one due.
 *
 *  - A watch on the bucket keeps an in-memory copy of the bookings (the initial values, then every
 *    change made by any instance), so bookings and cancels made elsewhere are followed too.
 *    Bookings whose carrier is done (DELIVERED or CANCELLED published) are dropped from it.
 *    Before publishing, a booking's progress is read from the store, so what another instance
 *    published is never published again.
 *    Scheduling starts once the watch has delivered the bucket's initial values.
 *  - A timer fires at the next stage due among the bookings. Each due stage is published
 *    (acknowledged by JetStream), then recorded in the booking's progress record
 *    (`progress.<deliveryId>`, a `CarrierProgress`) with a revision-checked write; a record
 *    written meanwhile by another instance is read again and decided again. A cancel (a change
 *    of the booking) is seen through the watch: CANCELLED is the next stage. The stages of one booking go out one after the other, in
 *    order; different bookings at the same time, a bounded number at once.
 *  - Stages that fell due while no instance was publishing (a restart, a hand-over) are
 *    published at once, in order, each dated by the plan. A stage published but not yet recorded
 *    when an instance stopped is published again with the same message id (stored once within
 *    the stream's duplicate window) and the same sequence (dropped by consumers after that).
 */
import type { JetStreamClient, KvEntry, QueuedIterator } from "nats";
import type { Logger } from "pino";
import { fromBinary } from "@bufbuild/protobuf";
import {
  CarrierProgressSchema,
  PickupSchema,
  type CarrierProgress,
  type Pickup,
} from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { LeaderLease } from "../../lib/nats/leader-lease.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { carrierStageName, isFinalCarrierStage, nextStage, reported, type PlanConfig } from "./carrier-plan.js";
import { publishCarrierStatus } from "./carrier-status.js";
import {
  deliveryOfProgressKey,
  isBookingKey,
  progressKey,
  progressStoreOf,
  SIMULATOR_LEASE_KEY,
  type PickupStore,
  type ProgressStore,
} from "./store.js";

export interface CarrierSimulatorOptions {
  readonly instanceId: string;
  readonly leaseMs: number;
  readonly plan: PlanConfig;
  readonly now: () => number;
  readonly log: Logger;
  /** Bookings worked on at once. Default 64. */
  readonly concurrency?: number;
}

/** Delay before trying a booking again after a failed publish or write. */
const RETRY_MS = 1_000;
/** Delay before watching again after the watch ended unexpectedly. */
const REWATCH_MS = 1_000;
/** How soon due stages are looked at again while the lease is not confirmed. */
const LEASE_WAIT_MS = 100;
/** The longest delay a timer takes (Node fires longer ones at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Tracked {
  booking?: Versioned<Pickup>;
  /** The progress record as last read or written; undefined before the first stage (or unknown). */
  progress?: Versioned<CarrierProgress>;
  /** No new attempt before this time (after a failed publish or write). */
  retryAtMs: number;
}

export class CarrierSimulator {
  private readonly lease: LeaderLease;
  private readonly progressStore: ProgressStore;
  private readonly tracked = new Map<string, Tracked>();
  private readonly busy = new Set<string>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly concurrency: number;
  private watch: QueuedIterator<KvEntry> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scheduleQueued = false;
  /** The watch of this term has delivered the bucket's initial values. */
  private initialized = false;
  /** Leadership generation: work of an earlier term stops touching the state. */
  private term = 0;
  private leading = false;
  private stopped = false;

  constructor(
    private readonly store: PickupStore,
    private readonly js: JetStreamClient,
    private readonly options: CarrierSimulatorOptions,
  ) {
    this.concurrency = options.concurrency ?? 64;
    this.progressStore = progressStoreOf(store);
    this.lease = new LeaderLease({
      kv: store.kv,
      key: SIMULATOR_LEASE_KEY,
      instanceId: options.instanceId,
      leaseMs: options.leaseMs,
      now: options.now,
      log: options.log,
      activity: "the carrier simulation",
      onLead: () => this.lead(),
      onFollow: () => this.follow(),
    });
  }

  start(): void {
    this.lease.start();
  }

  /** Stops publishing, waits for the work under way, then gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.follow();
    await Promise.allSettled([...this.inFlight]);
    await this.lease.stop();
  }

  /** True when this instance publishes the carriers' progress now. */
  isLeading(): boolean {
    return this.leading && this.lease.isLeader();
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work)).catch(() => undefined);
    return work;
  }

  // ---------------------------------------------------------------------------------------------
  // Leadership

  private lead(): void {
    if (this.stopped || this.leading) return;
    this.leading = true;
    this.term++;
    void this.track(this.runWatch(this.term));
  }

  private follow(): void {
    if (!this.leading) return;
    this.leading = false;
    this.term++;
    this.initialized = false;
    this.watch?.stop();
    this.watch = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.tracked.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // The bookings and their progress

  private async runWatch(term: number): Promise<void> {
    while (this.term === term && !this.stopped) {
      try {
        const watch = await this.store.kv.watch({
          key: ">",
          initializedFn: () => {
            if (this.term !== term) return;
            this.initialized = true;
            this.requestSchedule();
          },
        });
        if (this.term !== term) {
          watch.stop();
          return;
        }
        this.watch = watch;
        for await (const entry of watch) {
          if (this.term !== term) break;
          this.see(entry);
        }
      } catch (error) {
        if (this.term === term) this.options.log.warn({ err: error }, "carrier simulator: watching the bookings failed");
      }
      if (this.term !== term || this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, REWATCH_MS).unref());
    }
  }

  /** Takes a bucket entry in: a booking or a progress record, new, changed or removed. */
  private see(entry: KvEntry): void {
    const progressOf = deliveryOfProgressKey(entry.key);
    const deliveryId = progressOf ?? (isBookingKey(entry.key) ? entry.key : undefined);
    if (deliveryId === undefined) return;
    const removed = entry.operation !== "PUT" || entry.value.length === 0;
    if (removed && !progressOf) {
      this.tracked.delete(deliveryId);
      return;
    }
    const tracked = this.tracked.get(deliveryId) ?? { retryAtMs: 0 };
    try {
      if (progressOf) {
        if ((tracked.progress?.revision ?? 0) >= entry.revision) return;
        tracked.progress = removed ? undefined : { value: fromBinary(CarrierProgressSchema, entry.value), revision: entry.revision };
      } else {
        if ((tracked.booking?.revision ?? 0) >= entry.revision) return;
        tracked.booking = { value: fromBinary(PickupSchema, entry.value), revision: entry.revision };
      }
    } catch (error) {
      this.options.log.warn({ err: error, key: entry.key }, "carrier simulator: undecodable entry skipped");
      return;
    }
    if (tracked.progress && isFinalCarrierStage(tracked.progress.value.stage)) {
      // Done: nothing follows. A later change of the booking brings it back, and its progress is read again.
      this.tracked.delete(deliveryId);
      return;
    }
    this.tracked.set(deliveryId, tracked);
    this.requestSchedule();
  }

  /** Schedules once for a burst of changes (the initial values of the watch). */
  private requestSchedule(): void {
    if (this.scheduleQueued) return;
    this.scheduleQueued = true;
    setImmediate(() => {
      this.scheduleQueued = false;
      this.schedule();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Publishing due stages

  /** Starts the work on every due booking (within the bound), and sets the timer for the next one. */
  private schedule(): void {
    if (!this.leading || this.stopped || !this.initialized) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.options.now();
    let nextMs = Infinity;
    for (const [deliveryId, tracked] of this.tracked) {
      if (this.busy.has(deliveryId) || !tracked.booking) continue;
      const next = nextStage(tracked.booking.value, tracked.progress?.value, this.options.plan);
      if (!next) {
        this.tracked.delete(deliveryId);
        continue;
      }
      const dueMs = Math.max(next.atMs, tracked.retryAtMs);
      if (dueMs > now || this.busy.size >= this.concurrency) {
        nextMs = Math.min(nextMs, Math.max(dueMs, now + 1));
        continue;
      }
      if (!this.lease.isLeader()) {
        nextMs = Math.min(nextMs, now + LEASE_WAIT_MS);
        break;
      }
      this.busy.add(deliveryId);
      const term = this.term;
      void this.track(
        this.advance(deliveryId, term).finally(() => {
          this.busy.delete(deliveryId);
          if (this.term === term) this.requestSchedule();
        }),
      );
    }
    if (nextMs !== Infinity) {
      this.timer = setTimeout(() => this.schedule(), Math.min(Math.max(0, nextMs - now), MAX_TIMER_MS));
      this.timer.unref();
    }
  }

  /** Publishes and records the due stages of one booking, in order. */
  private async advance(deliveryId: string, term: number): Promise<void> {
    try {
      await this.advanceOrThrow(deliveryId, term);
    } catch (error) {
      this.options.log.warn({ err: error, deliveryId }, "carrier simulator: booking not advanced; will retry");
      const tracked = this.tracked.get(deliveryId);
      if (tracked) tracked.retryAtMs = this.options.now() + RETRY_MS;
    }
  }

  private async advanceOrThrow(deliveryId: string, term: number): Promise<void> {
    const key = progressKey(deliveryId);
    // What was published is read from the store first: the watch may not have shown it yet.
    let fresh = false;
    for (;;) {
      const tracked = this.tracked.get(deliveryId);
      if (!tracked?.booking || this.term !== term || !this.lease.isLeader()) return;
      if (!fresh) {
        const stored = await this.progressStore.get(key);
        if (stored && (tracked.progress?.revision ?? 0) < stored.revision) tracked.progress = stored;
        fresh = true;
      }
      const booking = tracked.booking.value;
      const progress = tracked.progress;
      const stage = nextStage(booking, progress?.value, this.options.plan);
      if (!stage) {
        this.tracked.delete(deliveryId);
        return;
      }
      if (stage.atMs > this.options.now()) return;
      try {
        await publishCarrierStatus(this.js, booking, stage);
      } catch (error) {
        this.options.log.warn({ err: error, deliveryId, stage: carrierStageName(stage.stage) }, "carrier status not published; will retry");
        tracked.retryAtMs = this.options.now() + RETRY_MS;
        return;
      }
      if (this.term !== term) return;
      const next = reported(booking, stage, this.options.now());
      try {
        const revision = progress ? await this.progressStore.update(key, next, progress.revision) : await this.progressStore.create(key, next);
        tracked.progress = { value: next, revision };
        this.options.log.info(
          { deliveryId, trackingId: booking.trackingId, stage: carrierStageName(stage.stage), sequence: stage.sequence },
          "carrier stage published",
        );
      } catch (error) {
        if (!isRevisionConflict(error) && !/exists/i.test((error as Error | undefined)?.message ?? "")) throw error;
        // Recorded meanwhile by another instance (a hand-over): read it and decide again.
        fresh = false;
      }
    }
  }
}
