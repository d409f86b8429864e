/**
 * The carrier status consumer: the durable consumer `delivery-carrier-status` on CARRIER_STATUS
 * turns an outside carrier's progress with a delivery (the Third-party service's
 * CarrierStatusEvents) into the delivery's stages, through the ledger's single write path (so
 * every stage entered is published).
 *
 *   carrier stage                  delivery stage
 *   BOOKED                      -> (none; the ETAs are taken)
 *   HEADED_TO_PICKUP            -> HEADED_TO_PICKUP
 *   PICKED_UP, IN_TRANSIT       -> HEADED_TO_DROPOFF (the parcels at the carrier's position)
 *   DELIVERED                   -> COMPLETED (the parcels at the drop-off location)
 *   CANCELLED                   -> (none: a booking is only cancelled by the workflow that cancels
 *                                  or fails the delivery itself)
 *
 * An event applies only to a delivery whose carrier is the third party with the event's tracking
 * id; stages only move forward, a move over several stages enters each one in between, and an
 * ended delivery is left alone.
 *
 * Early events. The Scheduler books the carrier before the delivery record names it, and the
 * carrier's first events may come before that: an event for a delivery with no record, or whose
 * record names no carrier yet, is handed back (nak) with a delay and retried, up to
 * `DELIVERY_CARRIER_MAX_DELIVER` deliveries; a record that names another carrier drops it.
 *
 * Order and repeats. Messages are handled in order per delivery (the subject's delivery id is
 * the ordering key), different deliveries at the same time. An event whose `sequence` is not
 * above the last one applied to the delivery (a repeat, a redelivery, an older one retried late)
 * is dropped; the last sequence is kept in memory (after a restart the stage order still keeps an
 * older event from moving a delivery back).
 */
import { clone, equals } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "nats";
import type { Logger } from "pino";
import { DeliverySchema, DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { CarrierStage, CarrierStatusEventSchema, type CarrierStatusEvent } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_events_pb.js";
import { decodeMessage, MessageDecodeError } from "../../lib/nats/messages.js";
import { STREAMS } from "../../lib/nats/streams.js";
import { ack, retry, type WorkOutcome } from "../../lib/nats/work-consumer.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { MAX_ID_LENGTH, TOKEN_ID_PATTERN } from "../../lib/validation/ids.js";
import { startKeyedConsumer, type RunningConsumer } from "./keyed-consumer.js";
import type { DeliveryLedger } from "./ledger.js";
import { enterStage, type Decision } from "./lifecycle.js";
import type { DeliveryConfig } from "./config.js";
import { LruMap } from "./lru.js";
import { stagesTo } from "./progress.js";
import { isEnded } from "./stages.js";

export const CARRIER_STATUS_CONSUMER = "delivery-carrier-status";

/** The consumer's settings, read with the service's others (config.ts, `DELIVERY_CARRIER_*`). */
export type CarrierStatusConfig = DeliveryConfig["carrier"];

/** The delivery stage a carrier stage stands for; undefined for none. */
export function deliveryStageForCarrier(stage: CarrierStage): DeliveryStage | undefined {
  switch (stage) {
    case CarrierStage.HEADED_TO_PICKUP:
      return DeliveryStage.HEADED_TO_PICKUP;
    case CarrierStage.PICKED_UP:
    case CarrierStage.IN_TRANSIT:
      return DeliveryStage.HEADED_TO_DROPOFF;
    case CarrierStage.DELIVERED:
      return DeliveryStage.COMPLETED;
    default:
      return undefined;
  }
}

/** Whether the event is of the carrier booked for this delivery. */
export function isBookedCarrier(delivery: Delivery, event: CarrierStatusEvent): boolean {
  return (
    delivery.carrier.case === "thirdParty" &&
    delivery.carrier.value.trackingId === event.trackingId &&
    event.deliveryId === delivery.deliveryId
  );
}

/**
 * The next record after a carrier event: the stages entered, where the parcels are (the
 * carrier's position once it carries them, the drop-off once delivered; before the pickup they
 * wait at the pickup location) and the ETAs. UNCHANGED when the event is not of the booked
 * carrier, the delivery has ended, or nothing would change.
 */
export function applyCarrierStatus(delivery: Delivery, event: CarrierStatusEvent, now: Date): Decision {
  if (isEnded(delivery.stage) || !isBookedCarrier(delivery, event)) return UNCHANGED;
  let next = delivery;
  for (const stage of stagesTo(delivery.stage, deliveryStageForCarrier(event.stage))) next = enterStage(next, stage, now);
  const entered = next !== delivery;
  if (!entered) next = clone(DeliverySchema, delivery);
  if (next.stage === DeliveryStage.COMPLETED) {
    next.lastKnownLocation = next.dropoff;
  } else if (next.stage === DeliveryStage.HEADED_TO_DROPOFF) {
    if (event.position) next.lastKnownLocation = event.position;
    if (event.deliveryEta) next.deliveryEta = event.deliveryEta;
  } else if (event.stage !== CarrierStage.CANCELLED) {
    if (event.pickupEta) next.pickupEta = event.pickupEta;
    if (event.deliveryEta) next.deliveryEta = event.deliveryEta;
  }
  if (!entered) {
    if (equals(DeliverySchema, next, delivery)) return UNCHANGED;
    next.updateTime = timestampFromDate(now);
  }
  return next;
}

export class CarrierStatusHandler {
  /** The highest carrier sequence applied to each delivery. */
  private readonly applied: LruMap<string, bigint>;

  constructor(
    private readonly ledger: DeliveryLedger,
    private readonly config: Pick<CarrierStatusConfig, "retryDelayMs" | "cacheSize" | "maxDeliver">,
    private readonly log: Logger,
  ) {
    this.applied = new LruMap(config.cacheSize);
  }

  async handle(msg: JsMsg): Promise<WorkOutcome> {
    let event: CarrierStatusEvent;
    try {
      event = decodeMessage(msg, CarrierStatusEventSchema);
    } catch (error) {
      if (!(error instanceof MessageDecodeError)) throw error;
      this.log.warn({ subject: msg.subject, err: error }, "undecodable carrier status event: dropped");
      return ack;
    }
    const { deliveryId } = event;
    if (!TOKEN_ID_PATTERN.test(deliveryId) || deliveryId.length > MAX_ID_LENGTH) return ack;
    const last = this.applied.get(deliveryId);
    if (last !== undefined && event.sequence !== 0n && event.sequence <= last) return ack;

    const found = await this.ledger.find(deliveryId);
    if (!found || found.value.carrier.case === undefined) {
      if (isEnded(found?.value.stage ?? DeliveryStage.UNSPECIFIED)) return ack;
      return this.later(msg, event, found ? "the delivery names no carrier yet" : "no delivery record yet");
    }
    if (isEnded(found.value.stage)) return ack;
    if (!isBookedCarrier(found.value, event)) {
      this.log.info({ deliveryId, trackingId: event.trackingId }, "carrier status event of a carrier the delivery does not name: dropped");
      return ack;
    }
    const result = await this.ledger.progress(deliveryId, found, (current, now) => applyCarrierStatus(current, event, now));
    if (!result) return this.later(msg, event, "no delivery record yet");
    if (event.sequence !== 0n) this.applied.set(deliveryId, event.sequence > (last ?? 0n) ? event.sequence : (last ?? 0n));
    return ack;
  }

  /** Hands the event back to be retried after a delay (the record gets its carrier shortly). */
  private later(msg: JsMsg, event: CarrierStatusEvent, reason: string): WorkOutcome {
    const attempt = msg.info.redeliveryCount;
    const fields = { deliveryId: event.deliveryId, stage: CarrierStage[event.stage], attempt, reason };
    if (attempt >= this.config.maxDeliver) this.log.warn(fields, "carrier status event still has no delivery to apply to; giving it up");
    else this.log.debug(fields, "carrier status event early; retrying later");
    return retry(this.config.retryDelayMs, reason);
  }
}

/** The delivery id of a `thirdparty.<deliveryId>.status` subject: the ordering key. */
function deliveryOfSubject(subject: string): string {
  return subject.split(".")[1] ?? subject;
}

/** Starts the durable consumer. */
export function startCarrierStatusConsumer(
  js: JetStreamClient,
  jsm: JetStreamManager,
  ledger: DeliveryLedger,
  config: CarrierStatusConfig,
  log: Logger,
): Promise<RunningConsumer> {
  const handler = new CarrierStatusHandler(ledger, config, log);
  return startKeyedConsumer(js, jsm, {
    stream: STREAMS.CARRIER_STATUS.name,
    durable: CARRIER_STATUS_CONSUMER,
    description: "Delivery service: outside carriers' progress to delivery stages, locations and ETAs",
    // A new durable takes the stored events too: they are idempotent, and none may be lost.
    deliverPolicy: DeliverPolicy.All,
    ackWaitMs: config.ackWaitMs,
    maxDeliver: config.maxDeliver,
    concurrency: config.concurrency,
    errorDelayMs: config.retryDelayMs,
    keyOf: (msg) => deliveryOfSubject(msg.subject),
    handle: (msg) => handler.handle(msg),
    log,
  });
}
