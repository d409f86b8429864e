/**
 * An account sees and changes only its own deliveries: before any per-delivery call, the owner is
 * looked up and another account's delivery answers NOT_FOUND exactly like a missing one.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Delivery as InternalDelivery } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { CallOptions, Client } from "../lib/grpc/types.js";
import { relay } from "./errors.js";

export async function requireOwnDelivery(
  delivery: Client<typeof DeliveryService>,
  deliveryId: string,
  account: string,
  options: CallOptions,
): Promise<void> {
  const { ownerId } = await relay(() => delivery.getDeliveryOwner({ deliveryId }, options));
  if (ownerId !== account) throw new ConnectError(`delivery ${deliveryId} not found`, Code.NotFound);
}

/**
 * One of the caller's deliveries, read in one call: the internal delivery names its owner, so
 * another account's delivery answers NOT_FOUND like a missing one without a separate lookup.
 */
export async function getOwnDelivery(
  delivery: Client<typeof DeliveryService>,
  deliveryId: string,
  account: string,
  options: CallOptions,
): Promise<InternalDelivery | undefined> {
  const answer = await relay(() => delivery.getDelivery({ deliveryId }, options));
  if (answer.delivery?.ownerId !== account) throw new ConnectError(`delivery ${deliveryId} not found`, Code.NotFound);
  return answer.delivery;
}
