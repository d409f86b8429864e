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

/** How long a watch waits for a delivery that was accepted but is not created yet. */
export const PENDING_DELIVERY_WAIT_MS = 15_000;
const PENDING_DELIVERY_POLL_MS = 250;

/**
 * Like requireOwnDelivery, for a caller about to follow a delivery: a request accepted a moment
 * ago is still on its way through the workflow, so NOT_FOUND is retried for up to `waitMs` (never
 * past the caller's cancellation) before it is answered.
 */
export async function awaitOwnDelivery(
  delivery: Client<typeof DeliveryService>,
  deliveryId: string,
  account: string,
  options: () => CallOptions,
  waitMs = PENDING_DELIVERY_WAIT_MS,
): Promise<void> {
  const giveUpAt = Date.now() + waitMs;
  for (;;) {
    try {
      await requireOwnDelivery(delivery, deliveryId, account, options());
      return;
    } catch (error) {
      const signal = options().signal;
      const notYet = error instanceof ConnectError && error.code === Code.NotFound;
      if (!notYet || Date.now() + PENDING_DELIVERY_POLL_MS > giveUpAt || signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, PENDING_DELIVERY_POLL_MS));
    }
  }
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
