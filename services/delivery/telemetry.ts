/**
 * The telemetry consumer: the durable consumer `delivery-telemetry` on DRONE_TELEMETRY turns the
 * location events of the drone assigned to a delivery into the delivery's progress (progress.ts),
 * through the ledger's single write path (so every stage entered is published).
 *
 * Carrier not yet recorded. The workflow assigns the drone, then records it on the delivery (stage
 * Requested to Created); an event of the drone in between is handed back (nak with a delay) until
 * the record names its drone, so no stage is missed. Should the workflow stop in between for
 * longer than the consumer's deliveries last, the reconciliation (reconcile.ts) completes the
 * delivery from the drone's assignment.
 *
 * Order and repeats. Messages are handled in order per drone (the subject's drone id is the
 * ordering key; a drone carries one delivery at a time, so a delivery's events stay in order),
 * different drones at the same time. An event whose drone `sequence` is not above the last one
 * applied to the delivery, and that was not measured later either (a repeat, a redelivery, a
 * replay), is dropped; stages only move forward anyway, so no event can enter a stage twice or
 * move one back. The last sequence is kept in memory: after a restart the first event of a
 * delivery sets it again (a replayed older event can then at most store an older position, which
 * the next write replaces).
 *
 * Load. A drone reports about once a second, so the record is not written for every event: it is
 * written when a stage is entered, and otherwise the position and ETAs at most once per
 * `DELIVERY_LOCATION_WRITE_INTERVAL_MS` per delivery. The records of deliveries in flight are kept
 * at hand (a bounded cache of what was last read or written, with its revision), so an event that
 * changes nothing costs no read; every write is still revision-checked against the stored record,
 * so a change made meanwhile by a call or another instance is seen and decided on.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "nats";
import type { Logger } from "pino";
import type { Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DroneLocationEventSchema } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { decodeMessage, MessageDecodeError } from "../../lib/nats/messages.js";
import { STREAMS } from "../../lib/nats/streams.js";
import { ack, retry, type WorkOutcome } from "../../lib/nats/work-consumer.js";
import type { Versioned } from "../../lib/store/proto-kv-store.js";
import { MAX_ID_LENGTH, TOKEN_ID_PATTERN } from "../../lib/validation/ids.js";
import type { DeliveryConfig } from "./config.js";
import { startKeyedConsumer, type RunningConsumer } from "./keyed-consumer.js";
import type { DeliveryLedger } from "./ledger.js";
import { LruMap } from "./lru.js";
import { applyProgress, deliveryStageFor, isAssignedDrone, stagesTo } from "./progress.js";
import { isEnded, isRequested } from "./stages.js";

export const TELEMETRY_CONSUMER = "delivery-telemetry";

/** Delay before an event of a drone whose delivery does not name its carrier yet is handled again. */
const CARRIER_PENDING_RETRY_MS = 500;

/** How long a delivery id found in no record is not looked up again (it may be created shortly). */
const UNKNOWN_RECHECK_MS = 1_000;

interface Tracked {
  /** The record as last read or written here. */
  version: Versioned<Delivery>;
  /** The highest drone sequence applied to the delivery (0 before the first). */
  lastSequence: bigint;
  /** The latest event time applied (ms), which tells a drone that started counting again from a replay. */
  lastEventMs: number;
  /** When the record was last written (or found unchanged) from telemetry, by the service clock. */
  lastWriteMs: number;
}

type CacheEntry = Tracked | { readonly unknownUntil: number };

export class TelemetryHandler {
  private readonly deliveries: LruMap<string, CacheEntry>;
  /** The last positive ground speed of each drone, for ETAs while it hovers. */
  private readonly speeds: LruMap<string, number>;

  constructor(
    private readonly ledger: DeliveryLedger,
    private readonly config: Pick<DeliveryConfig, "locationWriteIntervalMs" | "defaultSpeedMps" | "telemetryCacheSize">,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.deliveries = new LruMap(config.telemetryCacheSize);
    this.speeds = new LruMap(config.telemetryCacheSize);
  }

  async handle(msg: JsMsg): Promise<WorkOutcome> {
    let event;
    try {
      event = decodeMessage(msg, DroneLocationEventSchema);
    } catch (error) {
      if (!(error instanceof MessageDecodeError)) throw error;
      this.log.warn({ subject: msg.subject, err: error }, "undecodable drone location event: dropped");
      return ack;
    }
    if (event.speedMps > 0) this.speeds.set(event.droneId, event.speedMps);
    // Without a delivery (flying home), or with an id no delivery can have.
    if (!TOKEN_ID_PATTERN.test(event.deliveryId) || event.deliveryId.length > MAX_ID_LENGTH) return ack;

    let tracked = await this.tracked(event.deliveryId);
    // The record at hand may predate the carrier's assignment: read it again before judging.
    if (tracked && !isAssignedDrone(tracked.version.value, event) && !isEnded(tracked.version.value.stage)) {
      this.deliveries.delete(event.deliveryId);
      tracked = await this.tracked(event.deliveryId);
    }
    if (!tracked) return ack;
    const delivery = tracked.version.value;
    if (isEnded(delivery.stage)) return ack;
    if (!isAssignedDrone(delivery, event)) {
      // The drone flies for a delivery whose workflow has not recorded its carrier yet (a moment
      // after the assignment): keep the event until it has, so no stage is missed.
      return isRequested(delivery.stage) ? retry(CARRIER_PENDING_RETRY_MS, "the delivery's carrier is not recorded yet") : ack;
    }
    const eventMs = event.eventTime ? timestampMs(event.eventTime) : 0;
    if (isStale(event.sequence, eventMs, tracked)) return ack;

    const now = this.clock();
    const entersStage = stagesTo(delivery.stage, deliveryStageFor(event.stage, delivery.stage)).length > 0;
    const writePosition = now - tracked.lastWriteMs >= this.config.locationWriteIntervalMs;
    if (entersStage || writePosition) {
      const speedMps = event.speedMps > 0 ? event.speedMps : (this.speeds.get(event.droneId) ?? this.config.defaultSpeedMps);
      const result = await this.ledger.progress(event.deliveryId, tracked.version, (current, at) =>
        applyProgress(current, { event, speedMps, writePosition }, at),
      );
      if (!result) {
        this.deliveries.delete(event.deliveryId);
        return ack;
      }
      tracked.version = { value: result.delivery, revision: result.revision };
      tracked.lastWriteMs = now;
    }
    if (event.sequence !== 0n) tracked.lastSequence = event.sequence;
    tracked.lastEventMs = Math.max(tracked.lastEventMs, eventMs);
    return ack;
  }

  /** The delivery's state at hand, read from the store when not (or found in no record). */
  private async tracked(deliveryId: string): Promise<Tracked | undefined> {
    const cached = this.deliveries.get(deliveryId);
    if (cached && "version" in cached) return cached;
    if (cached && cached.unknownUntil > this.clock()) return undefined;
    const found = await this.ledger.find(deliveryId);
    if (!found) {
      this.deliveries.set(deliveryId, { unknownUntil: this.clock() + UNKNOWN_RECHECK_MS });
      return undefined;
    }
    // A concurrent load of the same delivery (another drone's message) may have won: keep one.
    const again = this.deliveries.get(deliveryId);
    if (again && "version" in again) return again;
    const tracked: Tracked = { version: found, lastSequence: 0n, lastEventMs: 0, lastWriteMs: 0 };
    this.deliveries.set(deliveryId, tracked);
    return tracked;
  }
}

/**
 * An event already applied or older than one applied: its sequence is not above the last one and
 * it was not measured later either (a drone whose sequence starts again at 1 after a restart
 * reports later times, and is followed).
 */
function isStale(sequence: bigint, eventMs: number, tracked: Tracked): boolean {
  return sequence !== 0n && sequence <= tracked.lastSequence && eventMs <= tracked.lastEventMs;
}

/** The drone id of a `drone.<droneId>.location` subject: the ordering key. */
function droneOfSubject(subject: string): string {
  return subject.split(".")[1] ?? subject;
}

export function startTelemetryConsumer(
  js: JetStreamClient,
  jsm: JetStreamManager,
  handler: TelemetryHandler,
  config: Pick<DeliveryConfig, "telemetryConcurrency" | "telemetryBatch" | "telemetryAckWaitMs" | "telemetryMaxDeliver">,
  log: Logger,
): Promise<RunningConsumer> {
  return startKeyedConsumer(js, jsm, {
    stream: STREAMS.DRONE_TELEMETRY.name,
    durable: TELEMETRY_CONSUMER,
    description: "Delivery service: drone positions to delivery stages, locations and ETAs",
    deliverPolicy: DeliverPolicy.New,
    ackWaitMs: config.telemetryAckWaitMs,
    maxDeliver: config.telemetryMaxDeliver,
    concurrency: config.telemetryConcurrency,
    batch: config.telemetryBatch,
    keyOf: (msg) => droneOfSubject(msg.subject),
    handle: (msg) => handler.handle(msg),
    log,
  });
}
