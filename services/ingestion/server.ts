/**
 * The IngestionService handlers: turn the request (checked by the binding against the field rules
 * of the contract) into a command, publish it to the DELIVERY_REQUESTS work queue, and answer only
 * once JetStream has stored it.
 */
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, PubAck } from "nats";
import {
  CancelDeliveryCommandSchema,
  RescheduleDeliveryCommandSchema,
  ScheduleDeliveryCommandSchema,
} from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { IngestionService } from "../../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { unavailable } from "../../lib/grpc/errors.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { cancelMsgId, deliveryIdFor, rescheduleMsgId, scheduleMsgId } from "./ids.js";

export interface IngestionOptions {
  /** How long to wait for the JetStream ack before answering UNAVAILABLE. */
  publishTimeoutMs: number;
}

export function ingestionRegistration(js: JetStreamClient, options: IngestionOptions): Registration {
  /** Publishes a command; a missing or late JetStream ack answers UNAVAILABLE. */
  async function publish<Desc extends DescMessage>(
    subject: string,
    schema: Desc,
    command: MessageShape<Desc>,
    msgId: string,
  ): Promise<PubAck> {
    try {
      return await publishMessage(js, subject, schema, command, {
        msgId,
        expectStream: STREAMS.DELIVERY_REQUESTS.name,
        timeoutMs: options.publishTimeoutMs,
      });
    } catch (error) {
      throw unavailable(
        `the request could not be stored (${(error as Error).message}); retry with the same idempotency key`,
        1_000,
      );
    }
  }

  return registration(IngestionService, {
    async scheduleDelivery(request) {
      const deliveryId = deliveryIdFor(request.ownerId, request.idempotencyKey);
      const acceptTime = timestampNow();
      const command = create(ScheduleDeliveryCommandSchema, {
        deliveryId,
        ownerId: request.ownerId,
        pickup: request.pickup,
        dropoff: request.dropoff,
        pickupTime: request.pickupTime,
        deadline: request.deadline,
        expedited: request.expedited,
        confirmationRequired: request.confirmationRequired,
        packages: request.packages,
        idempotencyKey: request.idempotencyKey,
        acceptTime,
      });
      const ack = await publish(subjects.scheduleRequest(deliveryId), ScheduleDeliveryCommandSchema, command, scheduleMsgId(deliveryId));
      return { deliveryId, acceptTime, duplicate: ack.duplicate };
    },

    async rescheduleDelivery(request) {
      const paths = request.updateMask?.paths;
      const acceptTime = timestampNow();
      const command = create(RescheduleDeliveryCommandSchema, {
        deliveryId: request.deliveryId,
        ownerId: request.ownerId,
        dropoff: paths?.includes("dropoff") ? request.dropoff : undefined,
        pickupTime: paths?.includes("pickup_time") ? request.pickupTime : undefined,
        deadline: paths?.includes("deadline") ? request.deadline : undefined,
        updateMask: { paths: [...new Set(paths)].sort() },
        idempotencyKey: request.idempotencyKey,
      });
      // The change itself, without the accept time, identifies a repeat of it.
      const msgId = rescheduleMsgId(request.deliveryId, request.idempotencyKey, toBinary(RescheduleDeliveryCommandSchema, command));
      command.acceptTime = acceptTime;
      const ack = await publish(subjects.rescheduleRequest(request.deliveryId), RescheduleDeliveryCommandSchema, command, msgId);
      return { deliveryId: request.deliveryId, acceptTime, duplicate: ack.duplicate };
    },

    async cancelDelivery(request) {
      const acceptTime = timestampNow();
      const command = create(CancelDeliveryCommandSchema, {
        deliveryId: request.deliveryId,
        ownerId: request.ownerId,
        reason: request.reason,
        idempotencyKey: request.idempotencyKey,
        acceptTime,
      });
      const msgId = cancelMsgId(request.deliveryId, request.idempotencyKey);
      const ack = await publish(subjects.cancelRequest(request.deliveryId), CancelDeliveryCommandSchema, command, msgId);
      return { deliveryId: request.deliveryId, acceptTime, duplicate: ack.duplicate };
    },
  });
}
