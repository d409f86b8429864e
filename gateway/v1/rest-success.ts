/**
 * The v1 REST answers other than 200: a scheduled delivery is accepted for asynchronous creation,
 * so `POST /v1/deliveryrequests` answers 202 Accepted with `Location` naming the delivery.
 */
import type { JsonValue } from "@bufbuild/protobuf";
import type { RestSuccess } from "../rest/handler.js";

export function v1RestSuccess(methodName: string, body: JsonValue): RestSuccess | undefined {
  if (methodName !== "ScheduleDelivery") return undefined;
  const deliveryId =
    typeof body === "object" && body !== null && !Array.isArray(body) ? body["deliveryId"] : undefined;
  if (typeof deliveryId !== "string" || deliveryId === "") return { status: 202 };
  return { status: 202, headers: { location: `/v1/deliveries/${encodeURIComponent(deliveryId)}` } };
}
