/**
 * The delivery records and what may be done to them: reads, the lifecycle operations, the
 * drone's progress, listing and summaries over the owner index. Every write of a record goes
 * through `commit`, a revision-checked read-modify-write, so concurrent changes of one delivery
 * (calls, telemetry, this instance or another) are decided one after the other on the latest
 * stored record; and every stage entered there is published as a status event (outbox.ts).
 */
import type { Logger } from "pino";
import type { Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { OpenDeliveryRequest, ScheduleDeliveryRequest } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { DeliveryFailureCode } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { AcceptedRequests } from "./accepted-requests.js";
import { aborted, alreadyExists, notFound } from "../../lib/grpc/errors.js";
import { isRevisionConflict, UNCHANGED, type Versioned } from "../../lib/store/proto-kv-store.js";
import { DELIVERY_FILTER, deliveryIdOfKey, deliveryKey, requestKey, type IndexPosition } from "./keys.js";
import {
  assignCarrier,
  cancel,
  confirm,
  fail,
  newDelivery,
  openedDelivery,
  scheduleRequestOf,
  reschedule,
  sameSchedule,
  type ConfirmationInput,
  type Decision,
  type PlanChange,
} from "./lifecycle.js";
import type { StatusOutbox } from "./outbox.js";
import { OwnerIndex } from "./owner-index.js";
import { encodePageToken } from "./page-token.js";
import { stageName } from "./stages.js";
import type { DeliveryStore } from "./store.js";
import type { ListQuery, MonthQuery } from "./queries.js";

/** Records loaded at once when a summary reads many. */
const LOAD_CONCURRENCY = 32;
/** Lost revision races before a write answers ABORTED. */
const COMMIT_ATTEMPTS = 10;

export interface Committed {
  readonly delivery: Delivery;
  /** The record's revision after the call. */
  readonly revision: number;
  /** False when the call changed nothing (a repeat). */
  readonly changed: boolean;
}

export type Decide = (current: Delivery | undefined, now: Date) => Decision;

export interface DeliveryCounts {
  readonly deliveryCount: number;
  readonly completedCount: number;
  readonly cancelledCount: number;
  readonly failedCount: number;
}

export class DeliveryLedger {
  private readonly index: OwnerIndex;

  constructor(
    private readonly store: DeliveryStore,
    private readonly outbox: StatusOutbox,
    private readonly log: Logger,
    private readonly clock: () => Date = () => new Date(),
    private readonly accepted?: AcceptedRequests,
  ) {
    this.index = new OwnerIndex(store);
  }

  /**
   * The stored delivery; NOT_FOUND when there is none. A delivery accepted by Ingestion whose
   * workflow has not opened its record yet is read from its request (`accepted`) and recorded
   * at stage Requested on the spot, so a customer never misses a delivery the API accepted.
   */
  async get(deliveryId: string): Promise<Delivery> {
    const found = await this.store.records.get(deliveryKey(deliveryId));
    if (found) return found.value;
    const request = await this.accepted?.find(deliveryId);
    if (!request) throw notFound(`delivery ${deliveryId}`);
    return (await this.open(request)).delivery;
  }

  /** The id of every stored delivery record. */
  async deliveryIds(): Promise<string[]> {
    const keys = await this.store.records.keys(DELIVERY_FILTER);
    return keys.flatMap((key) => deliveryIdOfKey(key) ?? []);
  }

  /** The stored delivery with its revision, or undefined. */
  find(deliveryId: string): Promise<Versioned<Delivery> | undefined> {
    return this.store.records.get(deliveryKey(deliveryId));
  }

  /**
   * Records an accepted request at stage Requested, or answers the stored delivery when the same
   * request was opened (or scheduled) before; another request under the id answers ALREADY_EXISTS.
   */
  open(request: OpenDeliveryRequest): Promise<{ delivery: Delivery; created: boolean }> {
    return this.create(scheduleRequestOf(request), (current, now) => (current ? UNCHANGED : openedDelivery(request, now)));
  }

  /**
   * Creates the delivery with its carrier, gives a Requested delivery its carrier, or answers the
   * stored one when the same delivery was scheduled before (see lifecycle.assignCarrier).
   */
  schedule(request: ScheduleDeliveryRequest): Promise<{ delivery: Delivery; created: boolean }> {
    return this.create(request, (current, now) => (current ? assignCarrier(current, request, now) : newDelivery(request, now)));
  }

  /**
   * The first request under an id is kept (`request.<id>`) and decides what "the same" is, so a
   * retry still matches after the delivery was rescheduled or moved on; another request under
   * the id answers ALREADY_EXISTS. The three writes (request, record, index entry, in this order)
   * are each idempotent, so a retry after a failure between them completes what is missing, and
   * an index entry never names a record that does not exist.
   */
  private async create(request: ScheduleDeliveryRequest, decide: Decide): Promise<{ delivery: Delivery; created: boolean }> {
    const id = request.deliveryId;
    await this.store.requests.mutate(requestKey(id), (first) => {
      if (!first) return request;
      if (sameSchedule(first, request)) return UNCHANGED;
      throw alreadyExists(`delivery ${id} (with different content)`);
    });
    let created = false;
    const { delivery } = await this.commit(id, (current, now) => {
      created = current === undefined;
      return decide(current, now);
    });
    await (created ? this.index.add(delivery) : this.index.ensure(delivery));
    return { delivery, created };
  }

  reschedule(deliveryId: string, change: PlanChange): Promise<Committed> {
    return this.commitExisting(deliveryId, (delivery, now) => reschedule(delivery, change, now));
  }

  cancel(deliveryId: string, reason: string): Promise<Committed> {
    return this.commitExisting(deliveryId, (delivery, now) => cancel(delivery, reason, now));
  }

  /**
   * Marks the delivery Failed. One that was never recorded (its workflow failed before opening it)
   * is first recorded from `request`, when given, so its customer sees it fail.
   */
  async fail(deliveryId: string, reason: string, code: DeliveryFailureCode, request?: OpenDeliveryRequest): Promise<Committed> {
    if (request && !(await this.find(deliveryId))) await this.open(request);
    return this.commitExisting(deliveryId, (delivery, now) => fail(delivery, reason, code, now));
  }

  confirm(deliveryId: string, input: ConfirmationInput): Promise<Committed> {
    return this.commitExisting(deliveryId, (delivery, now) => confirm(delivery, input, now));
  }

  /**
   * Applies the drone's progress to a delivery known to exist. `known` is the record as last
   * seen (its revision is tried first, saving a read when nobody wrote since); `decide` answers
   * UNCHANGED for a delivery that must not change. Undefined when the delivery does not exist.
   */
  async progress(deliveryId: string, known: Versioned<Delivery> | undefined, decide: (current: Delivery, now: Date) => Decision): Promise<Committed | undefined> {
    try {
      return await this.commit(
        deliveryId,
        (current, now) => {
          if (!current) throw MISSING_RECORD;
          return decide(current, now);
        },
        known,
      );
    } catch (error) {
      if (error === MISSING_RECORD) return undefined;
      throw error;
    }
  }

  /** One page of an owner's deliveries, newest first, and the token of the next page. */
  async list(query: ListQuery): Promise<{ deliveries: Delivery[]; nextPageToken: string }> {
    const positions = await this.index.positions(query.ownerId);
    const start = query.after === undefined ? 0 : positions.findIndex((p) => p.position > (query.after ?? ""));
    const from = start === -1 ? positions.length : start;
    const page = positions.slice(from, from + query.pageSize);
    const deliveries = await this.load(page);
    const last = page.at(-1);
    const more = from + page.length < positions.length;
    return { deliveries, nextPageToken: more && last ? encodePageToken(query.ownerId, last.position) : "" };
  }

  /** Counts of an owner's deliveries created in one month, from the stored records. */
  async summary(query: MonthQuery): Promise<DeliveryCounts> {
    const positions = (await this.index.positions(query.ownerId)).filter(
      (p) => p.createMillis >= query.startMs && p.createMillis < query.endMs,
    );
    const counts = { deliveryCount: 0, completedCount: 0, cancelledCount: 0, failedCount: 0 };
    for (let i = 0; i < positions.length; i += LOAD_CONCURRENCY) {
      for (const delivery of await this.load(positions.slice(i, i + LOAD_CONCURRENCY))) {
        counts.deliveryCount++;
        if (delivery.stage === DeliveryStage.COMPLETED) counts.completedCount++;
        else if (delivery.stage === DeliveryStage.CANCELLED) counts.cancelledCount++;
        else if (delivery.stage === DeliveryStage.FAILED) counts.failedCount++;
      }
    }
    return counts;
  }

  /** The records at the given index positions, in their order. */
  private async load(positions: readonly IndexPosition[]): Promise<Delivery[]> {
    const found = await Promise.all(positions.map((p) => this.store.records.get(deliveryKey(p.deliveryId))));
    return found.flatMap((entry) => (entry ? [entry.value] : []));
  }

  private commitExisting(deliveryId: string, decide: (delivery: Delivery, now: Date) => Decision): Promise<Committed> {
    return this.commit(deliveryId, (current, now) => {
      if (!current) throw notFound(`delivery ${deliveryId}`);
      return decide(current, now);
    });
  }

  /**
   * The single place where a delivery record is written, and so where every change of stage is
   * stored and published: reads the record (or starts from `known`), lets `decide` compute the
   * next one (again after a lost race), and writes it only if nobody wrote in between. When the
   * next record enters a stage, the delivery's outbox entry is written first (by every attempt,
   * after its read), and after the write the stages entered are published (`outbox.release`), so a
   * crash in between leaves the entry for the outbox sweep.
   */
  private async commit(deliveryId: string, decide: Decide, known?: Versioned<Delivery>): Promise<Committed> {
    const key = deliveryKey(deliveryId);
    let marked: number | undefined;
    let written: Delivery | undefined;
    try {
      for (let attempt = 1; ; attempt++) {
        const current = attempt === 1 && known ? known : await this.store.records.get(key);
        const next = decide(current?.value, this.clock());
        if (next === UNCHANGED) {
          if (!current) throw new TypeError(`commit(${key}): UNCHANGED returned for a missing record`);
          return { delivery: current.value, revision: current.revision, changed: false };
        }
        if (next.history.length > (current?.value.history.length ?? 0)) marked = await this.outbox.mark(deliveryId);
        try {
          const revision = current ? await this.store.records.update(key, next, current.revision) : await this.store.records.create(key, next);
          written = next;
          this.stagesEntered(current?.value, next);
          return { delivery: next, revision, changed: true };
        } catch (error) {
          if (!isRevisionConflict(error) && !(current === undefined && isExistsError(error))) throw error;
          if (attempt >= COMMIT_ATTEMPTS) throw aborted(`concurrent updates to ${key} kept conflicting; retry the call`);
        }
      }
    } finally {
      // Also after a failed or abandoned write: a racing writer's stages may be waiting.
      if (marked !== undefined) await this.outbox.release(deliveryId, marked, written);
    }
  }

  /** Logs the stages a committed write entered. */
  private stagesEntered(before: Delivery | undefined, after: Delivery): void {
    if (!this.log.isLevelEnabled("info")) return;
    for (const change of after.history.slice(before?.history.length ?? 0)) {
      this.log.info({ deliveryId: after.deliveryId, ownerId: after.ownerId, stage: stageName(change.stage), reason: change.reason || undefined }, "delivery stage changed");
    }
  }
}

/** Thrown by a decision on a record that does not exist, to end the commit (one object: no stack is taken per call). */
const MISSING_RECORD: unique symbol = Symbol("missing record");

/** `kv.create` on an existing key fails with a wrong-last-sequence error or "key exists". */
function isExistsError(error: unknown): boolean {
  return /exists/i.test((error as Error | undefined)?.message ?? "");
}
