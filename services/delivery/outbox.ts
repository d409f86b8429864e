/**
 * Publishing status events so that none is lost, and none is stored twice.
 *
 * A record write that enters a stage is preceded by the delivery's outbox entry `outbox.<deliveryId>`
 * (keys.ts), written again by every attempt of the write (after its read). After the write the
 * writer publishes what is missing from DELIVERY_STATUS and removes the entry, but only at the
 * revision it wrote itself: if another writer marked the delivery since, the entry stays for that
 * writer (which, having marked after this write, publishes it too). A crash (or a JetStream outage)
 * between a write and its publish leaves the entry, and the sweep (at start, then every
 * `DELIVERY_OUTBOX_INTERVAL_MS`) publishes for it.
 *
 * What is missing is decided from the stored record and the stream, not from memory: the record's
 * history lists every stage entered, in order; the delivery's latest message in the stream
 * (`Dd-History-Index`) tells how far the stream has it. Only the entries after that one are
 * published, each after the previous was acknowledged, so the stream holds a delivery's events in
 * history order and each once, even when several writers (instances) flush one delivery at the
 * same time; their identical message ids (`<deliveryId>:<stage>`) make a racing repeat a duplicate
 * that JetStream does not store.
 *
 * The stream position is remembered. After a write, the lookup of the delivery's latest message
 * is saved when this process knows it already: the history index and stream sequence of the last
 * event it published (or found) for the delivery. The next events are then published with
 * `Nats-Expected-Last-Subject-Sequence` set to that sequence, so JetStream stores them only if the
 * delivery's latest stored event is still that one; if anything else happened meanwhile (another
 * instance published, the stream lost its events) the publish is refused and the events are
 * published the checked way, from the lookup. The sweep always looks up.
 */
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, JetStreamManager, PubAck } from "nats";
import type { Logger } from "pino";
import type { Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { subjects } from "../../lib/nats/streams.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import { deliveryIdOfOutboxKey, deliveryKey, OUTBOX_FILTER, outboxKey } from "./keys.js";
import { stageName } from "./stages.js";
import { statusEventAt, statusMessageId } from "./status.js";
import { LruMap } from "./lru.js";
import { HISTORY_INDEX_HEADER, historyIndexOf, lastStatusMessage, STATUS_STREAM } from "./status-stream.js";
import type { DeliveryStore } from "./store.js";

/** Deliveries flushed at once by a sweep. */
const SWEEP_CONCURRENCY = 8;
/** Deliveries whose latest stored status event is remembered, by default. */
const DEFAULT_POSITIONS = 20_000;
/** JetStream's header that makes a publish conditional on the subject's latest sequence. */
const EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence";

/** The latest status event of a delivery known to be stored: its history index and stream sequence. */
interface StreamPosition {
  readonly index: number;
  readonly seq: number;
}

export interface OutboxOptions {
  /** How long a publish waits for JetStream's ack. */
  readonly publishTimeoutMs: number;
  /** Age after which the sweep removes an entry whose events are all published. */
  readonly settleMs: number;
  /** Deliveries whose latest stored status event is remembered (default 20,000). */
  readonly positions?: number;
}

export interface RunningSweep {
  stop(): Promise<void>;
}

export class StatusOutbox {
  /** The flush of each delivery in progress here, so one process publishes a delivery's events one flush at a time. */
  private readonly flushing = new Map<string, Promise<boolean>>();
  /** Entry removals after a publish, still in progress. */
  private readonly removing = new Set<Promise<void>>();
  /** The latest status event of each delivery this process published or found stored. */
  private readonly positions: LruMap<string, StreamPosition>;

  constructor(
    private readonly store: DeliveryStore,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly log: Logger,
    private readonly options: OutboxOptions,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.positions = new LruMap(options.positions ?? DEFAULT_POSITIONS);
  }

  /** Writes the outbox entry of a delivery about to enter a stage; returns the entry's revision. */
  async mark(deliveryId: string): Promise<number> {
    return this.store.outbox.put(outboxKey(deliveryId), timestampFromDate(this.clock()));
  }

  /**
   * After a write the entry was marked for (at `revision`): publishes what is missing, then
   * removes the entry unless someone marked it again since. When publishing fails the entry stays
   * for the sweep. Resolves once the events are published (or left to the sweep); the removal of
   * the entry goes on after that (`idle` waits for it). Never throws: the write itself is done.
   */
  async release(deliveryId: string, revision: number, written: Delivery | undefined): Promise<void> {
    if (!(await this.flush(deliveryId, written, true))) return;
    const removal: Promise<void> = this.store.outbox.delete(outboxKey(deliveryId), revision).then(
      () => {
        this.removing.delete(removal);
      },
      (error: unknown) => {
        this.removing.delete(removal);
        if (!isRevisionConflict(error)) this.log.warn({ err: error, deliveryId }, "outbox entry not removed; the sweep will");
      },
    );
    this.removing.add(removal);
  }

  /**
   * Publishes the status events of a delivery that DELIVERY_STATUS does not hold yet, oldest
   * first. `known` is a record just written (saves a read); with `afterWrite`, the stream position
   * remembered from this process's last publish is tried before a lookup. True when nothing is
   * left to publish.
   */
  flush(deliveryId: string, known?: Delivery, afterWrite = false): Promise<boolean> {
    const previous = this.flushing.get(deliveryId);
    const next = previous ? previous.then(() => this.publishMissing(deliveryId, known, afterWrite)) : this.publishMissing(deliveryId, known, afterWrite);
    this.flushing.set(deliveryId, next);
    void next.finally(() => {
      if (this.flushing.get(deliveryId) === next) this.flushing.delete(deliveryId);
    });
    return next;
  }

  private async publishMissing(deliveryId: string, known: Delivery | undefined, afterWrite: boolean): Promise<boolean> {
    try {
      const delivery = known ?? (await this.store.records.get(deliveryKey(deliveryId)))?.value;
      if (!delivery) return true;
      const position = afterWrite ? this.positions.get(deliveryId) : undefined;
      if (position && position.index < delivery.history.length - 1) {
        try {
          await this.publishFrom(delivery, position.index + 1, position.seq);
          return true;
        } catch (error) {
          // Refused because the stream moved on otherwise (or a failure): decide from the stream.
          this.positions.delete(deliveryId);
          if (!isRevisionConflict(error)) throw error;
        }
      }
      const last = await lastStatusMessage(this.jsm, deliveryId);
      const from = last ? historyIndexOf(delivery, last) + 1 : 0;
      if (last && from > 0 && from === delivery.history.length) this.positions.set(deliveryId, { index: from - 1, seq: last.seq });
      await this.publishFrom(delivery, from, undefined);
      return true;
    } catch (error) {
      this.log.warn({ err: error, deliveryId }, "status events not published yet; the outbox keeps them");
      return false;
    }
  }

  /**
   * Publishes the history entries from `from` on, each after the previous was acknowledged; with
   * `afterSeq`, the first only if the delivery's latest stored event is at that sequence, and each
   * next one only if the one before is still the latest. Remembers the last one stored.
   */
  private async publishFrom(delivery: Delivery, from: number, afterSeq: number | undefined): Promise<void> {
    const deliveryId = delivery.deliveryId;
    let expected = afterSeq;
    for (let index = from; index < delivery.history.length; index++) {
      const headers: Record<string, string> = { [HISTORY_INDEX_HEADER]: String(index) };
      if (expected !== undefined) headers[EXPECTED_LAST_SUBJECT_SEQUENCE] = String(expected);
      const ack: PubAck = await publishMessage(this.js, subjects.deliveryStatus(deliveryId), DeliveryStatusEventSchema, statusEventAt(delivery, index), {
        msgId: statusMessageId(delivery, index),
        headers,
        expectStream: STATUS_STREAM,
        timeoutMs: this.options.publishTimeoutMs,
      });
      // A repeat of an event stored before (duplicate) says nothing of the subject's latest.
      if (ack.duplicate) this.positions.delete(deliveryId);
      else this.positions.set(deliveryId, { index, seq: ack.seq });
      // Only a conditional run stays conditional; the checked way publishes as it always did.
      expected = expected === undefined || ack.duplicate ? undefined : ack.seq;
      if (this.log.isLevelEnabled("debug")) {
        this.log.debug({ deliveryId, stage: stageName(delivery.history[index]?.stage ?? 0), seq: ack.seq, duplicate: ack.duplicate }, "status event published");
      }
    }
  }

  /**
   * Publishes for every outbox entry, and removes the entries older than `settleMs` whose
   * delivery has nothing left to publish (a younger one may belong to a write still in progress
   * elsewhere). Returns the number of deliveries flushed.
   */
  async sweep(): Promise<number> {
    const work: string[] = [];
    for (const key of await this.store.outbox.keys(OUTBOX_FILTER)) {
      const id = deliveryIdOfOutboxKey(key);
      if (id) work.push(id);
    }
    const count = work.length;
    const worker = async () => {
      for (let id = work.shift(); id !== undefined; id = work.shift()) {
        const entry = await this.store.outbox.get(outboxKey(id));
        if (!entry) continue;
        if (!(await this.flush(id))) continue;
        if (this.clock().getTime() - timestampDate(entry.value).getTime() < this.options.settleMs) continue;
        await this.store.outbox.delete(outboxKey(id), entry.revision).catch((error: unknown) => {
          if (!isRevisionConflict(error)) this.log.warn({ err: error, deliveryId: id }, "outbox entry not removed");
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(SWEEP_CONCURRENCY, count) }, worker));
    return count;
  }

  /** Sweeps at once, then every `intervalMs`, until stopped. */
  startSweeping(intervalMs: number): RunningSweep {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> = Promise.resolve();
    const run = () => {
      running = this.sweep()
        .then((count) => {
          if (count > 0) this.log.info({ deliveries: count }, "outbox swept");
        })
        .catch((error: unknown) => this.log.warn({ err: error }, "outbox sweep failed; will try again"))
        .finally(() => {
          if (!stopped) timer = setTimeout(run, intervalMs);
        });
    };
    run();
    return {
      async stop() {
        stopped = true;
        clearTimeout(timer);
        await running;
      },
    };
  }

  /** Waits for the flushes in progress. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.flushing.values()]);
    await Promise.allSettled([...this.removing]);
  }
}
