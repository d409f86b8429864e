/**
 * The stream DELIVERY_STATUS as this service writes and reads it: one subject per delivery,
 * `delivery.<deliveryId>.status`, each message a DeliveryStatusEvent with the headers of every
 * platform message plus `Dd-History-Index`, the position of the stage in the delivery's history
 * (0 for Created). The index tells the publisher which stages of a delivery are stored already.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { JetStreamManager, NatsError, StoredMsg } from "nats";
import type { Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { decodeMessage, type ReceivedMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";

export const STATUS_STREAM = STREAMS.DELIVERY_STATUS.name;

/** Header with the position of the event's stage in the delivery's history. */
export const HISTORY_INDEX_HEADER = "Dd-History-Index";

/** JetStream API error: no message matches the request. */
const JS_NO_MESSAGE_FOUND = 10037;

/** The latest status message of a delivery, or undefined when none is stored. */
export async function lastStatusMessage(jsm: JetStreamManager, deliveryId: string): Promise<StoredMsg | undefined> {
  try {
    return await jsm.streams.getMessage(STATUS_STREAM, { last_by_subj: subjects.deliveryStatus(deliveryId) });
  } catch (error) {
    const e = error as NatsError;
    if (e.api_error?.err_code === JS_NO_MESSAGE_FOUND || /no message found/i.test(e.message ?? "")) return undefined;
    throw error;
  }
}

/** The `Dd-History-Index` of a received status message, when present and well formed. */
export function historyIndexHeader(msg: ReceivedMessage): number | undefined {
  const raw = (msg.headers ?? msg.header)?.get(HISTORY_INDEX_HEADER);
  if (!raw || !/^\d{1,6}$/.test(raw)) return undefined;
  return Number(raw);
}

/**
 * Which history entry of `delivery` a stored status message stands for: by its index header when
 * it names an entry of the same stage, else by the stage and time of the event it carries; -1 when
 * it matches none (the publisher then publishes the whole history again, which message ids and
 * subscribers' checks make harmless).
 */
export function historyIndexOf(delivery: Delivery, msg: ReceivedMessage): number {
  let event;
  try {
    event = decodeMessage(msg, DeliveryStatusEventSchema);
  } catch {
    return -1;
  }
  const byHeader = historyIndexHeader(msg);
  if (byHeader !== undefined && delivery.history[byHeader]?.stage === event.stage) return byHeader;
  const at = event.eventTime ? timestampMs(event.eventTime) : undefined;
  return delivery.history.findIndex((h) => h.stage === event.stage && (h.changeTime ? timestampMs(h.changeTime) : undefined) === at);
}
