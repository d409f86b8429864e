/**
 * The delivery history subscriber: a second, independent subscriber of DELIVERY_STATUS. Its
 * durable consumer `delivery-history` reads every status event (from the start of the stream) and
 * keeps each delivery's events, oldest first, in its own bucket `delivery-history` (key
 * `events.<deliveryId>`, value a GetDeliveryHistoryResponse: exactly the list of events that
 * GetDeliveryHistory answers). It knows nothing of the publisher but the stream and the event:
 * a repeated event (a republish, a redelivery) is recognised by its content, so it is kept once.
 */
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "nats";
import type { Logger } from "pino";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import {
  GetDeliveryHistoryResponseSchema,
  type GetDeliveryHistoryResponse,
} from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { notFound } from "../../lib/grpc/errors.js";
import { openBucket } from "../../lib/nats/kv.js";
import { decodeMessage, MessageDecodeError } from "../../lib/nats/messages.js";
import { ack, backoffMs, retry, type WorkOutcome } from "../../lib/nats/work-consumer.js";
import { assertKey, ProtoKvStore, UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { MAX_ID_LENGTH, TOKEN_ID_PATTERN } from "../../lib/validation/ids.js";
import type { DeliveryConfig } from "./config.js";
import { startKeyedConsumer, type RunningConsumer } from "./keyed-consumer.js";
import { STATUS_STREAM } from "./status-stream.js";

export const HISTORY_BUCKET = "delivery-history";
export const HISTORY_CONSUMER = "delivery-history";

export type HistoryStore = ProtoKvStore<typeof GetDeliveryHistoryResponseSchema>;

export async function openHistoryStore(js: JetStreamClient): Promise<HistoryStore> {
  const kv = await openBucket(js, HISTORY_BUCKET, {
    description: "Delivery history subscriber: every delivery's status events from DELIVERY_STATUS, oldest first",
  });
  return new ProtoKvStore(kv, GetDeliveryHistoryResponseSchema);
}

export function historyKey(deliveryId: string): string {
  return assertKey(`events.${deliveryId}`);
}

const timeOf = (event: DeliveryStatusEvent): number => (event.eventTime ? timestampMs(event.eventTime) : 0);

/**
 * Whether two events report the same stage entry: a delivery enters each stage once, except
 * Rescheduled, whose entries differ by the time they were made.
 */
export function sameEntry(a: DeliveryStatusEvent, b: DeliveryStatusEvent): boolean {
  if (a.stage !== b.stage) return false;
  return a.stage !== DeliveryStage.RESCHEDULED || timeOf(a) === timeOf(b);
}

/**
 * The history with `event` added in the order of the stage changes (by event time; an event of
 * the same time goes after those there), or UNCHANGED when it holds that entry already.
 */
export function withEvent(history: GetDeliveryHistoryResponse | undefined, event: DeliveryStatusEvent): GetDeliveryHistoryResponse | typeof UNCHANGED {
  const events = history?.events ?? [];
  if (events.some((known) => sameEntry(known, event))) return UNCHANGED;
  const at = events.findIndex((known) => timeOf(known) > timeOf(event));
  const next = [...events];
  next.splice(at === -1 ? next.length : at, 0, event);
  return create(GetDeliveryHistoryResponseSchema, { events: next });
}

export class DeliveryHistory {
  constructor(
    private readonly store: HistoryStore,
    private readonly log: Logger,
    private readonly retryBaseMs = 500,
  ) {}

  /** The events of a delivery, oldest first; NOT_FOUND when none is known. */
  async events(deliveryId: string): Promise<DeliveryStatusEvent[]> {
    const found = await this.store.get(historyKey(deliveryId));
    if (!found || found.value.events.length === 0) throw notFound(`status events of delivery ${deliveryId}`);
    return found.value.events;
  }

  async handle(msg: JsMsg): Promise<WorkOutcome> {
    let event;
    try {
      event = decodeMessage(msg, DeliveryStatusEventSchema);
    } catch (error) {
      if (!(error instanceof MessageDecodeError)) throw error;
      this.log.warn({ subject: msg.subject, err: error }, "undecodable status event: dropped");
      return ack;
    }
    if (!TOKEN_ID_PATTERN.test(event.deliveryId) || event.deliveryId.length > MAX_ID_LENGTH || deliveryOfSubject(msg.subject) !== event.deliveryId) {
      this.log.warn({ subject: msg.subject, deliveryId: event.deliveryId }, "status event of another subject: dropped");
      return ack;
    }
    try {
      await this.store.mutate(historyKey(event.deliveryId), (history) => withEvent(history, event));
      return ack;
    } catch (error) {
      const attempt = msg.info.redeliveryCount;
      this.log.warn({ err: error, deliveryId: event.deliveryId, attempt }, "status event not stored yet; will retry");
      return retry(backoffMs(attempt, this.retryBaseMs), (error as Error).message);
    }
  }
}

/** The delivery id of a `delivery.<deliveryId>.status` subject: the ordering key. */
function deliveryOfSubject(subject: string): string {
  return subject.split(".")[1] ?? subject;
}

export function startHistorySubscriber(
  js: JetStreamClient,
  jsm: JetStreamManager,
  history: DeliveryHistory,
  config: Pick<DeliveryConfig, "historyConcurrency" | "historyAckWaitMs">,
  log: Logger,
): Promise<RunningConsumer> {
  return startKeyedConsumer(js, jsm, {
    stream: STATUS_STREAM,
    durable: HISTORY_CONSUMER,
    description: "Delivery history subscriber: keeps every delivery's status events",
    deliverPolicy: DeliverPolicy.All,
    ackWaitMs: config.historyAckWaitMs,
    maxDeliver: -1,
    concurrency: config.historyConcurrency,
    keyOf: (msg) => deliveryOfSubject(msg.subject),
    handle: (msg) => history.handle(msg),
    log,
  });
}
