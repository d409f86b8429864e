/**
 * `CarrierStatusEvent`s on `thirdparty.<deliveryId>.status` (stream CARRIER_STATUS), published
 * with publishMessage: the message type header, the trace context, and the Nats-Msg-Id
 * `<deliveryId>:<trackingId>:<STAGE>`, so a stage published twice (a restart, a hand-over between
 * instances) is stored once.
 */
import type { JetStreamClient, PubAck } from "nats";
import { CarrierStatusEventSchema } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_events_pb.js";
import type { Pickup } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import { statusEvent, statusMsgId, type PlannedStage } from "./carrier-plan.js";

/** Publishes the stage's event; resolves once JetStream stored it (or recognised it as a repeat). */
export function publishCarrierStatus(js: JetStreamClient, booking: Pickup, stage: PlannedStage): Promise<PubAck> {
  return publishMessage(js, subjects.carrierStatus(booking.deliveryId), CarrierStatusEventSchema, statusEvent(booking, stage), {
    msgId: statusMsgId(booking, stage.stage),
    expectStream: STREAMS.CARRIER_STATUS.name,
  });
}
