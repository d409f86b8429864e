/**
 * The v2 REST answers other than 200. Scheduling, rescheduling and cancelling are accepted for
 * asynchronous processing, so they answer 202 Accepted; a scheduled delivery's answer also
 * carries `Location` naming the new delivery resource, `/v2/deliveries/{delivery_id}`.
 */
import type { JsonValue } from "@bufbuild/protobuf";
import type { RestSuccess } from "../rest/handler.js";

/** The methods whose request is accepted now and carried out later. */
const ACCEPTED = new Set(["ScheduleDelivery", "RescheduleDelivery", "CancelDelivery"]);

export function v2RestSuccess(methodName: string, body: JsonValue): RestSuccess | undefined {
  if (!ACCEPTED.has(methodName)) return undefined;
  if (methodName !== "ScheduleDelivery") return { status: 202 };
  const deliveryId =
    typeof body === "object" && body !== null && !Array.isArray(body) ? body["deliveryId"] : undefined;
  if (typeof deliveryId !== "string" || deliveryId === "") return { status: 202 };
  return { status: 202, headers: { location: `/v2/deliveries/${encodeURIComponent(deliveryId)}` } };
}
