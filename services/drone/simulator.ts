/**
 * The flight simulator: while this instance holds the simulator lease (leader-lease.ts), it flies
 * every drone that has a flight, from the plans stored with the drones.
 *
 *  - A watch on `drone.*` keeps an in-memory copy of the fleet's records (the initial values, then
 *    every change made by any instance), so assignments and releases made elsewhere are flown too.
 *  - Ticks: at every telemetry boundary (`tickMs`, aligned on the epoch) each drone in flight gets
 *    one location event. The events of a tick are published together and their acks awaited
 *    together; a tick that finds the previous one still unacknowledged is skipped (back-pressure).
 *  - Stage changes: a timer fires at the next transition due in the fleet; each due transition is
 *    published (acknowledged), then stored in the drone record with a revision-checked write. A
 *    record changed meanwhile is read again and the work redone from it; republished stage events
 *    are stored once thanks to their message ids. Reaching the drop-off completes the assignment.
 *  - The drop-off is committed first: before anything of a due drop-off (its stage change, a tick
 *    in its stage) is published, the flight is marked `dropoffCommitted` with a revision-checked
 *    write, so a reroute (reroute.ts) either re-plans the flight before that write (and the old
 *    drop-off is never published) or finds it committed and refuses.
 *  - Transitions due while no instance was flying (a restart) are published and stored at once.
 *  - An active assignment whose drone has no flight yet (the call that made it stopped before
 *    starting it) gets its flight started.
 */
import type { JetStreamClient, KvEntry, QueuedIterator } from "nats";
import type { Logger } from "pino";
import { AssignmentState, FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import { claimedAtMs, startFlight } from "./claims.js";
import type { DroneRecord } from "./drone-record.js";
import { awaitsDropoffCommit, isOver, nextTransitionMs, type FlightTiming } from "./flight.js";
import { hasFlightFor } from "./flight-start.js";
import { LeaderLease } from "./leader-lease.js";
import { hasTick } from "./sequence.js";
import { DRONE_KEYS, DRONE_PREFIX, LEADER_KEY, droneRecordOf, type DroneStore } from "./store.js";
import { publishLocation, tickEvent, transitionEvent, type OutgoingEvent } from "./telemetry.js";
import { appliedRecord, completeDelivery, dueTransitions, reachesDropoff } from "./transitions.js";

export interface SimulatorOptions {
  readonly instanceId: string;
  readonly leaseMs: number;
  readonly timing: FlightTiming;
  readonly now: () => number;
  readonly log: Logger;
}

/** One drone as the simulator knows it. */
interface Tracked {
  record: DroneRecord;
  revision: number;
  /** The highest sequence this instance published for the drone. */
  lastSent: number;
  /** The flight and boundary of the last tick published. */
  tickFlight: number;
  tickBoundary: number;
  /** Stage changes of the drone are being published and stored. */
  busy: boolean;
  /** Something happened while busy: look at the drone again when done. */
  again: boolean;
  /** No new attempt before this time (after a failed publish or write). */
  retryAtMs: number;
  /** When an unstarted flight was last looked into. */
  startCheckedAtMs: number;
}

/** How long the call that created an assignment gets to start its flight before the simulator does. */
const START_GRACE_MS = 2_000;
/** Period of the check for assignments whose flight was not started. */
const HOUSEKEEPING_MS = 2_000;
/** Delay before trying again after a failed publish or write. */
const RETRY_MS = 1_000;
/** Delay before watching again after the watch ended unexpectedly. */
const REWATCH_MS = 1_000;
/** How soon due transitions are looked at again while the lease is not confirmed. */
const LEASE_WAIT_MS = 100;
/** The longest delay a timer takes (Node fires longer ones at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class FlightSimulator {
  private readonly lease: LeaderLease;
  private readonly tracked = new Map<string, Tracked>();
  /** When each drone's next stage change is due (see `dueOf`), earliest first; stale entries are skipped. */
  private readonly dueQueue = new DueQueue();
  /** Drones changed since the queue was last updated. */
  private readonly changed = new Set<Tracked>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private watch: QueuedIterator<KvEntry> | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private transitionTimer: NodeJS.Timeout | undefined;
  private housekeepingTimer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private tickBatch: Promise<unknown> | undefined;
  /** Leadership generation: work of an earlier term stops touching the state. */
  private term = 0;
  private leading = false;
  private stopped = false;
  private publishFailures = 0;

  constructor(
    private readonly store: DroneStore,
    private readonly js: JetStreamClient,
    private readonly options: SimulatorOptions,
  ) {
    this.lease = new LeaderLease({
      kv: store.kv,
      key: LEADER_KEY,
      instanceId: options.instanceId,
      leaseMs: options.leaseMs,
      now: options.now,
      log: options.log,
      onLead: () => this.lead(),
      onFollow: () => this.follow(),
    });
  }

  start(): void {
    this.lease.start();
  }

  /** Stops flying, waits for the work under way, then gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.follow();
    await Promise.allSettled([...this.inFlight]);
    await this.lease.stop();
  }

  /** True when this instance flies the drones now. */
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
    void this.track(this.startWatch(this.term));
    this.scheduleTick();
    this.housekeepingTimer = setInterval(() => this.housekeeping(), HOUSEKEEPING_MS);
    this.housekeepingTimer.unref();
  }

  private follow(): void {
    if (!this.leading) return;
    this.leading = false;
    this.term++;
    clearTimeout(this.tickTimer);
    clearTimeout(this.transitionTimer);
    clearInterval(this.housekeepingTimer);
    this.watch?.stop();
    this.watch = undefined;
    this.tracked.clear();
    this.dueQueue.clear();
    this.changed.clear();
  }

  private async startWatch(term: number): Promise<void> {
    let watch: QueuedIterator<KvEntry>;
    try {
      watch = await this.store.kv.watch({ key: DRONE_KEYS });
    } catch (error) {
      this.options.log.warn({ err: error }, "could not watch the drones; trying again");
      this.rewatchLater(term);
      return;
    }
    if (term !== this.term) {
      watch.stop();
      return;
    }
    this.watch = watch;
    try {
      for await (const entry of watch) {
        if (term !== this.term) break;
        this.onEntry(entry);
      }
    } catch (error) {
      this.options.log.warn({ err: error }, "the drone watch failed");
    }
    if (term === this.term) this.rewatchLater(term);
  }

  private rewatchLater(term: number): void {
    setTimeout(() => {
      if (term === this.term && this.leading) void this.track(this.startWatch(term));
    }, REWATCH_MS).unref();
  }

  private onEntry(entry: KvEntry): void {
    const droneId = entry.key.slice(DRONE_PREFIX.length);
    let stored;
    try {
      stored = droneRecordOf(entry);
    } catch (error) {
      this.options.log.error({ err: error, key: entry.key }, "unreadable drone record; not flying it");
      return;
    }
    if (!stored) {
      this.tracked.delete(droneId);
      return;
    }
    const current = this.tracked.get(droneId);
    if (!current) {
      this.tracked.set(droneId, {
        record: stored.value,
        revision: stored.revision,
        lastSent: 0,
        tickFlight: 0,
        tickBoundary: 0,
        busy: false,
        again: false,
        retryAtMs: 0,
        startCheckedAtMs: 0,
      });
    } else if (!this.update(current, stored.value, stored.revision)) {
      return;
    }
    const tracked = this.tracked.get(droneId)!;
    this.advance(tracked, this.options.now());
    this.requestSchedule(tracked);
  }

  /** Replaces the tracked record by a newer one; false when it is not newer. */
  private update(tracked: Tracked, record: DroneRecord, revision: number): boolean {
    if (revision <= tracked.revision) return false;
    tracked.record = record;
    tracked.revision = revision;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks

  private scheduleTick(): void {
    const period = this.options.timing.tickMs;
    const now = this.options.now();
    this.tickTimer = setTimeout(() => this.tick(), period - (now % period) + 1);
    this.tickTimer.unref();
  }

  private tick(): void {
    if (!this.leading) return;
    this.scheduleTick();
    if (!this.lease.isLeader()) return;
    if (this.tickBatch) return; // the previous tick is still unacknowledged: skip this one
    const now = this.options.now();
    const acks: Promise<unknown>[] = [];
    for (const tracked of this.tracked.values()) {
      const ack = this.advance(tracked, now);
      if (ack) acks.push(ack);
    }
    if (acks.length === 0) return;
    const batch = Promise.allSettled(acks).then(() => {
      this.tickBatch = undefined;
      this.options.log.debug({ drones: acks.length, ms: this.options.now() - now }, "telemetry tick published");
    });
    this.tickBatch = this.track(batch);
  }

  // ---------------------------------------------------------------------------------------------
  // Stage changes

  /** Schedules the transition timer once, after the current burst of changes (of `tracked`). */
  private requestSchedule(tracked?: Tracked): void {
    if (tracked) this.changed.add(tracked);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.scheduleTransitions();
    });
  }

  /**
   * When the drone's next stage change can be worked on (its due time, or its retry time if
   * later); undefined while it is busy or has nothing due.
   */
  private dueOf(tracked: Tracked): number | undefined {
    if (tracked.busy || !tracked.record.flight) return undefined;
    const due = nextTransitionMs(tracked.record.flight);
    return due === undefined ? undefined : Math.max(due, tracked.retryAtMs);
  }

  /** True while a queue entry still says when the drone is due (it was not changed or dropped since). */
  private isCurrent(entry: DueEntry): boolean {
    return this.tracked.get(entry.tracked.record.drone.droneId) === entry.tracked && this.dueOf(entry.tracked) === entry.atMs;
  }

  /**
   * Sets the timer for the earliest stage change due in the fleet. Only the drones changed since
   * the last call are looked at (a queue of due times, not a scan of the fleet): every change of a
   * drone's record, busy state or retry time is followed by `requestSchedule(tracked)`.
   */
  private scheduleTransitions(): void {
    clearTimeout(this.transitionTimer);
    if (!this.leading) return;
    // Stale entries leave the queue when they come first; past twice the fleet, it is rebuilt
    // (one pass over the fleet for as many changes).
    const rebuild = this.dueQueue.size > 2 * this.tracked.size + 1_000;
    if (rebuild) this.dueQueue.clear();
    for (const tracked of rebuild ? this.tracked.values() : this.changed) {
      const atMs = this.dueOf(tracked);
      if (atMs !== undefined) this.dueQueue.push({ atMs, tracked });
    }
    this.changed.clear();
    let first = this.dueQueue.peek();
    while (first && !this.isCurrent(first)) {
      this.dueQueue.pop();
      first = this.dueQueue.peek();
    }
    if (!first) return;
    const next = first.atMs;
    // While the lease waits for its renewal nothing is published: look again a little later.
    const floor = this.lease.isLeader() ? 0 : LEASE_WAIT_MS;
    const delay = Math.min(MAX_TIMER_MS, Math.max(floor, next - this.options.now()));
    this.transitionTimer = setTimeout(() => this.runTransitions(), delay);
    this.transitionTimer.unref();
  }

  private runTransitions(): void {
    if (!this.leading) return;
    const now = this.options.now();
    const advanced = new Set<Tracked>();
    for (let entry = this.dueQueue.peek(); entry && entry.atMs <= now; entry = this.dueQueue.peek()) {
      this.dueQueue.pop();
      if (!this.isCurrent(entry) || advanced.has(entry.tracked)) continue;
      advanced.add(entry.tracked);
      this.advance(entry.tracked, now);
    }
    // A drone still due afterwards (not made busy) goes back in the queue.
    for (const tracked of advanced) this.changed.add(tracked);
    this.scheduleTransitions();
  }

  /**
   * Publishes what is due for the drone at `now`: its stage changes not yet applied and the tick of
   * the current boundary, in sequence order. Ticks alone are published without waiting (the
   * promise of their ack is returned); stage changes are awaited and stored in the background.
   */
  private advance(tracked: Tracked, now: number): Promise<unknown> | undefined {
    if (!this.isLeading()) return undefined;
    if (tracked.busy) {
      tracked.again = true;
      return undefined;
    }
    const { record } = tracked;
    const flight = record.flight;
    if (!flight || isOver(flight)) return undefined;
    if (awaitsDropoffCommit(flight, now)) {
      // Nothing more of this flight is published until its drop-off is committed.
      if (tracked.retryAtMs <= now) this.commitDropoff(tracked);
      return undefined;
    }

    const due = tracked.retryAtMs <= now ? dueTransitions(flight, now) : [];
    const events: OutgoingEvent[] = due.map((i) => transitionEvent(record.drone, flight, i));
    const boundary = Math.floor(now / flight.tickMs);
    const tickDone = tracked.tickFlight === flight.number && tracked.tickBoundary >= boundary;
    if (!tickDone && hasTick(flight, boundary)) {
      const tick = tickEvent(record.drone, flight, boundary);
      if (tick.event.sequence > BigInt(tracked.lastSent)) events.push(tick);
      tracked.tickFlight = flight.number;
      tracked.tickBoundary = boundary;
    }
    if (events.length === 0) return undefined;
    events.sort((a, b) => (a.event.sequence < b.event.sequence ? -1 : a.event.sequence > b.event.sequence ? 1 : 0));

    // Published in sequence order on one connection, so JetStream stores them in that order.
    const acks = events.map((e) => {
      tracked.lastSent = Math.max(tracked.lastSent, Number(e.event.sequence));
      return { event: e, ack: publishLocation(this.js, e) };
    });
    if (due.length === 0) return this.track(Promise.all(acks.map((a) => a.ack)).catch((error: unknown) => this.publishFailed(error)));

    // The tick published beside the stage changes is not waited for: a failure is only counted
    // (left unhandled, a time-out while a NATS node is down would end the process).
    for (const a of acks) {
      if (!a.event.stageChange) void this.track(a.ack.catch((error: unknown) => this.publishFailed(error)));
    }
    tracked.busy = true;
    const term = this.term;
    void this.track(
      this.applyTransitions(tracked, record, tracked.revision, due, acks.filter((a) => a.event.stageChange).map((a) => a.ack), term)
        .catch((error: unknown) => {
          this.options.log.warn({ err: error, droneId: record.drone.droneId }, "could not apply a stage change; trying again");
          tracked.retryAtMs = this.options.now() + RETRY_MS;
        })
        .finally(() => {
          tracked.busy = false;
          if (term !== this.term) return;
          if (tracked.again) {
            tracked.again = false;
            this.advance(tracked, this.options.now());
          }
          this.requestSchedule(tracked);
        }),
    );
    return undefined;
  }

  /** Marks the flight's drop-off committed (revision-checked), then looks at the drone again. */
  private commitDropoff(tracked: Tracked): void {
    const { record, revision } = tracked;
    const next: DroneRecord = { ...record, flight: { ...record.flight!, dropoffCommitted: true } };
    tracked.busy = true;
    const term = this.term;
    void this.track(
      (async () => {
        try {
          const written = await this.store.updateDrone(next, revision);
          if (term === this.term) this.update(tracked, next, written);
        } catch (error) {
          if (!isRevisionConflict(error)) throw error;
          // Changed meanwhile (a reroute, a release, a stage change): fly what is stored now.
          const fresh = await this.store.getDrone(record.drone.droneId);
          if (!fresh) tracked.retryAtMs = this.options.now() + RETRY_MS;
          else if (term === this.term) this.update(tracked, fresh.value, fresh.revision);
        }
      })()
        .catch((error: unknown) => {
          this.options.log.warn({ err: error, droneId: record.drone.droneId }, "could not commit a drop-off; trying again");
          tracked.retryAtMs = this.options.now() + RETRY_MS;
        })
        .finally(() => {
          tracked.busy = false;
          if (term !== this.term) return;
          tracked.again = false;
          this.advance(tracked, this.options.now());
          this.requestSchedule(tracked);
        }),
    );
  }

  private publishFailed(error: unknown): void {
    this.publishFailures++;
    // One warning per hundred failures keeps an outage from flooding the log.
    if (this.publishFailures % 100 === 1) {
      this.options.log.warn({ err: error, failures: this.publishFailures }, "location events could not be published");
    }
  }

  /** Once the stage events are stored: completes the delivery if reached, then stores the transitions. */
  private async applyTransitions(
    tracked: Tracked,
    record: DroneRecord,
    revision: number,
    due: readonly number[],
    stageAcks: readonly Promise<unknown>[],
    term: number,
  ): Promise<void> {
    await Promise.all(stageAcks);
    const flight = record.flight!;
    const upTo = due[due.length - 1]!;
    const completed = reachesDropoff(flight, upTo) ? await completeDelivery(this.store, record.drone.droneId, flight) : false;
    const next = appliedRecord(record, upTo, completed, this.options.now());
    try {
      const written = await this.store.updateDrone(next, revision);
      if (term === this.term) this.update(tracked, next, written);
      for (const i of due) {
        const { event } = transitionEvent(record.drone, flight, i);
        this.options.log.info(
          { droneId: event.droneId, deliveryId: event.deliveryId, stage: FlightStage[event.stage] },
          "drone stage changed",
        );
      }
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
      // Changed meanwhile (a claim, a release, another transition): read it again and redo.
      const fresh = await this.store.getDrone(record.drone.droneId);
      if (fresh && term === this.term) this.update(tracked, fresh.value, fresh.revision);
      tracked.again = true;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Flights left unstarted

  private housekeeping(): void {
    if (!this.isLeading()) return;
    const now = this.options.now();
    for (const tracked of this.tracked.values()) {
      const { drone } = tracked.record;
      if (drone.deliveryId === "" || hasFlightFor(tracked.record, drone.deliveryId)) continue;
      if (now - claimedAtMs(drone) < START_GRACE_MS || now - tracked.startCheckedAtMs < HOUSEKEEPING_MS) continue;
      tracked.startCheckedAtMs = now;
      void this.track(this.startIfAssigned(drone.deliveryId));
    }
  }

  private async startIfAssigned(deliveryId: string): Promise<void> {
    try {
      const assignment = await this.store.getAssignment(deliveryId);
      if (assignment?.value.state !== AssignmentState.ACTIVE) return; // not (yet) assigned, or ended: the reclaim sweep's job
      const drone = await startFlight(this.store, assignment.value, this.options.timing, () => new Date(this.options.now()));
      if (drone) this.options.log.debug({ deliveryId, droneId: assignment.value.droneId }, "flight of an assignment left unstarted is started");
    } catch (error) {
      this.options.log.warn({ err: error, deliveryId }, "could not start an unstarted flight");
    }
  }
}

interface DueEntry {
  readonly atMs: number;
  readonly tracked: Tracked;
}

/** A binary min-heap of due times. */
class DueQueue {
  private heap: DueEntry[] = [];

  get size(): number {
    return this.heap.length;
  }

  clear(): void {
    this.heap = [];
  }

  peek(): DueEntry | undefined {
    return this.heap[0];
  }

  push(entry: DueEntry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.atMs <= h[i]!.atMs) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  pop(): DueEntry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.atMs < h[m]!.atMs) m = l;
      if (r < h.length && h[r]!.atMs < h[m]!.atMs) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
    return top;
  }
}
