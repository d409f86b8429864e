/**
 * WatchDelivery: a delivery's status as a stream. First the current status (a DeliveryStatusEvent
 * built from the record, with the stream sequence of the delivery's latest status event), then
 * every status event stored in DELIVERY_STATUS for the delivery (an ordered consumer filtered on
 * `delivery.<deliveryId>.status`), each with its stream sequence, and, when asked, the live
 * positions of the drone carrying the delivery (a plain subscription to
 * `drone.<droneId>.location`; positions are not kept, so they carry the sequence of the last status
 * sent). The stream ends after the event of a final stage, when the caller leaves, or at its
 * deadline. A caller that resumes with `after_sequence` = S gets only what lies after S: the
 * current status only when it is newer than S, then the events after it.
 */
import { create } from "@bufbuild/protobuf";
import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, Msg, NatsConnection, Subscription } from "nats";
import type { Logger } from "pino";
import type { DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DeliveryStatusEventSchema } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import type { Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import {
  PositionUpdateSchema,
  WatchDeliveryRequestSchema,
  WatchDeliveryResponseSchema,
  type WatchDeliveryRequest,
  type WatchDeliveryResponse,
} from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneLocationEventSchema, type DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { unavailable } from "../../lib/grpc/errors.js";
import type { HandlerContext } from "../../lib/grpc/types.js";
import { decodeMessage } from "../../lib/nats/messages.js";
import { subjects } from "../../lib/nats/streams.js";
import { refuseRuleViolations } from "../../lib/validation/rules.js";
import type { DeliveryConfig } from "./config.js";
import type { DeliveryLedger } from "./ledger.js";
import { Inbox } from "./inbox.js";
import { estimateArrivals } from "./progress.js";
import { isEnded } from "./stages.js";
import { statusEventAt } from "./status.js";
import { historyIndexHeader, lastStatusMessage, STATUS_STREAM } from "./status-stream.js";

/** Positions waiting for a slow reader before the oldest are dropped. */
const MAX_QUEUED_POSITIONS = 64;

type Update =
  | { readonly kind: "status"; readonly sequence: number; readonly historyIndex: number | undefined; readonly event: DeliveryStatusEvent }
  | { readonly kind: "position"; readonly event: DroneLocationEvent }
  | { readonly kind: "lost"; readonly error: unknown };

export class DeliveryWatcher {
  constructor(
    private readonly ledger: DeliveryLedger,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly config: Pick<DeliveryConfig, "defaultSpeedMps">,
    private readonly log: Logger,
  ) {}

  async *watch(request: WatchDeliveryRequest, ctx: Pick<HandlerContext, "signal">): AsyncGenerator<WatchDeliveryResponse> {
    // The id becomes part of NATS subjects: the contract's rules hold even for a direct caller.
    refuseRuleViolations(WatchDeliveryRequestSchema, request);
    const id = request.deliveryId;
    const after = Number(request.afterSequence > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : request.afterSequence);
    // The latest event's sequence first, then the record: an event stored in between is then
    // delivered by the consumer rather than missed.
    const latest = (await this.latestSequence(id)) ?? 0;
    const delivery = await this.ledger.get(id);
    const currentIndex = delivery.history.length - 1;
    const showCurrent = after === 0 || after < latest;
    const current = statusUpdate(latest, statusEventAt(delivery, currentIndex));
    if (isEnded(delivery.stage)) {
      if (showCurrent) yield current;
      return;
    }

    const inbox = new Inbox<Update>(MAX_QUEUED_POSITIONS);
    let positions: Subscription | undefined;
    let statuses: { consumer: Consumer; messages: ConsumerMessages } | undefined;
    try {
      // The drone's positions, once the delivery names its drone (at the start, or with the status
      // event that records it: a watch may begin while the delivery is still Requested).
      const followDrone = (droneId: string) => {
        if (!request.includePositions || positions || droneId === "") return;
        positions = this.nc.subscribe(subjects.droneLocation(droneId), {
          callback: (error, msg) => {
            if (!error) this.onPosition(id, msg, inbox);
          },
        });
      };
      // Both feeds are open before the first update goes out, so nothing after it is missed.
      if (delivery.carrier.case === "droneId") followDrone(delivery.carrier.value);
      statuses = await this.statusesAfter(id, Math.max(after, latest));
      void pump(statuses.messages, inbox);
      if (showCurrent) yield current;

      // Events of entries already shown as the current status (published after `latest` was read) are not sent again.
      const shownIndex = showCurrent ? currentIndex : -1;
      let sequence = Math.max(after, latest);
      let lastPosition = 0n;
      let speedMps = this.config.defaultSpeedMps;
      for (;;) {
        const update = await inbox.next(ctx.signal);
        if (update === undefined) return;
        switch (update.kind) {
          case "lost":
            this.log.warn({ err: update.error, deliveryId: id }, "watch lost the status stream");
            throw unavailable("the delivery status stream is not available; watch again with the last sequence");
          case "status":
            if (update.historyIndex !== undefined && update.historyIndex <= shownIndex) continue;
            sequence = update.sequence;
            followDrone(update.event.droneId);
            yield statusUpdate(sequence, update.event);
            if (isEnded(update.event.stage)) return;
            continue;
          case "position": {
            const { event } = update;
            if (event.sequence !== 0n && event.sequence <= lastPosition) continue;
            lastPosition = event.sequence;
            if (event.speedMps > 0) speedMps = event.speedMps;
            yield positionUpdate(sequence, delivery, event, speedMps);
            continue;
          }
        }
      }
    } finally {
      positions?.unsubscribe();
      if (statuses) {
        statuses.messages.stop();
        // The server would drop the consumer after a while without readers; free it now.
        statuses.consumer.delete().catch(() => undefined);
      }
    }
  }

  private async latestSequence(deliveryId: string): Promise<number | undefined> {
    try {
      return (await lastStatusMessage(this.jsm, deliveryId))?.seq;
    } catch (error) {
      this.log.warn({ err: error, deliveryId }, "delivery status stream not readable");
      throw unavailable("the delivery status stream is not available; retry shortly");
    }
  }

  /** The delivery's status messages stored after stream sequence `after`, as they come. */
  private async statusesAfter(deliveryId: string, after: number): Promise<{ consumer: Consumer; messages: ConsumerMessages }> {
    try {
      const consumer = await this.js.consumers.get(STATUS_STREAM, {
        filterSubjects: subjects.deliveryStatus(deliveryId),
        opt_start_seq: after + 1,
      });
      return { consumer, messages: await consumer.consume({ abort_on_missing_resource: true }) };
    } catch (error) {
      this.log.warn({ err: error, deliveryId }, "delivery status stream not readable");
      throw unavailable("the delivery status stream is not available; retry shortly");
    }
  }

  private onPosition(deliveryId: string, msg: Msg, inbox: Inbox<Update>): void {
    try {
      const event = decodeMessage(msg, DroneLocationEventSchema);
      if (event.deliveryId === deliveryId && event.position) inbox.push({ kind: "position", event }, true);
    } catch (error) {
      this.log.debug({ err: error, subject: msg.subject }, "undecodable drone location event ignored by a watch");
    }
  }
}

/** Moves the status messages of a consumer into the inbox until it stops. */
async function pump(messages: ConsumerMessages, inbox: Inbox<Update>): Promise<void> {
  try {
    for await (const msg of messages) {
      try {
        const event = decodeMessage(msg, DeliveryStatusEventSchema);
        inbox.push({ kind: "status", sequence: msg.seq, historyIndex: historyIndexHeader(msg), event });
      } catch {
        // Not a status event: nothing to tell the watcher.
      }
    }
  } catch (error) {
    inbox.push({ kind: "lost", error });
  }
}

function statusUpdate(sequence: number, event: DeliveryStatusEvent): WatchDeliveryResponse {
  return create(WatchDeliveryResponseSchema, { sequence: BigInt(sequence), update: { case: "statusEvent", value: event } });
}

function positionUpdate(sequence: number, delivery: Delivery, event: DroneLocationEvent, speedMps: number): WatchDeliveryResponse {
  const { deliveryEta } = estimateArrivals(delivery, event, speedMps, new Date());
  return create(WatchDeliveryResponseSchema, {
    sequence: BigInt(sequence),
    update: {
      case: "position",
      value: create(PositionUpdateSchema, { location: event.position, eventTime: event.eventTime, deliveryEta }),
    },
  });
}
