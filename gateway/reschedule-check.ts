/**
 * A reschedule the platform could not carry out is refused before it is accepted, with
 * FAILED_PRECONDITION and the reason (a google.rpc.PreconditionFailure of type DELIVERY_STAGE or
 * CARRIER, subject `delivery:<id>`), instead of being accepted and then silently not applied:
 *   - a delivery that has ended (Completed, Cancelled, Failed) cannot change;
 *   - an outside carrier's drop-off cannot be moved.
 * A drone's drop-off can be moved until the parcels are dropped off: the workflow re-routes the
 * drone first and changes the delivery only once the drone flies there (a drop-off reached in the
 * meantime leaves the delivery as it was, where the drone really went).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeliveryStage, type Delivery } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { PreconditionFailureSchema } from "../gen/google/rpc/error_details_pb.js";

const ENDED = new Map([
  [DeliveryStage.COMPLETED, "completed"],
  [DeliveryStage.CANCELLED, "cancelled"],
  [DeliveryStage.FAILED, "failed"],
]);

function refusal(delivery: Delivery, type: string, description: string): ConnectError {
  const detail = create(PreconditionFailureSchema, {
    violations: [{ type, subject: `delivery:${delivery.deliveryId}`, description }],
  });
  return new ConnectError(description, Code.FailedPrecondition, undefined, [{ desc: PreconditionFailureSchema, value: detail }]);
}

/** Throws the refusal of a reschedule changing `paths` of `delivery`, if it cannot be carried out. */
export function refuseImpossibleReschedule(delivery: Delivery, paths: readonly string[]): void {
  const ended = ENDED.get(delivery.stage);
  if (ended) throw refusal(delivery, "DELIVERY_STAGE", `delivery ${delivery.deliveryId} has ${ended}; it can no longer be rescheduled`);
  if (paths.includes("dropoff") && delivery.carrier.case === "thirdParty") {
    throw refusal(delivery, "CARRIER", `delivery ${delivery.deliveryId} is carried by ${delivery.carrier.value.carrier}, whose drop-off cannot be changed`);
  }
}
