/**
 * Accepted schedule requests whose delivery has no record yet. Ingestion answers "accepted" once
 * the ScheduleDeliveryCommand is stored in DELIVERY_REQUESTS (`delivery.request.schedule.<id>`),
 * and the Scheduler acknowledges (removes) it only after its first step has opened the delivery
 * record. So, for any accepted delivery, either the record exists or the command is still in the
 * stream: a read that finds no record looks here and opens the record from the command.
 */
import type { JetStreamManager, NatsError } from "nats";
import type { OpenDeliveryRequest } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { ScheduleDeliveryCommandSchema } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { decodeMessage, MessageDecodeError } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import { TOKEN_ID_PATTERN } from "../../lib/validation/ids.js";
import { openRequestOf } from "../../lib/workflow/open-request.js";

export interface AcceptedRequests {
  /** The accepted request of a delivery whose command is still queued, or undefined. */
  find(deliveryId: string): Promise<OpenDeliveryRequest | undefined>;
}

/** JetStream API error: no message matches the request. */
const JS_NO_MESSAGE_FOUND = 10037;

/** Reads the queued commands of DELIVERY_REQUESTS, one subject at a time. */
export class QueuedScheduleRequests implements AcceptedRequests {
  constructor(private readonly jsm: JetStreamManager) {}

  async find(deliveryId: string): Promise<OpenDeliveryRequest | undefined> {
    if (!TOKEN_ID_PATTERN.test(deliveryId)) return undefined;
    let stored;
    try {
      stored = await this.jsm.streams.getMessage(STREAMS.DELIVERY_REQUESTS.name, { last_by_subj: subjects.scheduleRequest(deliveryId) });
    } catch (error) {
      const e = error as NatsError;
      if (e.api_error?.err_code === JS_NO_MESSAGE_FOUND || /no message found/i.test(e.message ?? "")) return undefined;
      throw error;
    }
    try {
      return openRequestOf(decodeMessage(stored, ScheduleDeliveryCommandSchema));
    } catch (error) {
      if (error instanceof MessageDecodeError) return undefined;
      throw error;
    }
  }
}
