/**
 * The handlers of the public `dronedelivery.api.v1.DeliveryApiService`: each authenticates the
 * caller (see ../auth.ts), checks ownership of the delivery it touches, maps the public request
 * onto the internal services and their answers back.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { relayWatch, rescheduleCommand } from "../shared-handlers.js";
import { ConfirmationType as PublicConfirmationType } from "../../gen/dronedelivery/api/v1/resources_pb.js";
import { ConfirmationType } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { accountOf } from "../auth.js";
import { streamCallOptions, unaryCallOptions } from "../call-options.js";
import { relay } from "../errors.js";
import { resolveIdempotencyKey } from "../idempotency.js";
import type { HandlerDeps } from "../handler-deps.js";
import {
  confirmationTypeToInternal,
  deliveryFromInternal,
  eventFromInternal,
  locationToInternal,
  packagesToInternal,
  schedulePathToPublic,
  statusFromInternal,
  watchUpdateFromInternal,
} from "./mapping.js";
import { awaitOwnDelivery, getOwnDelivery, requireOwnDelivery } from "./ownership.js";

export function deliveryApiHandlers({ clients, callTimeoutMs, pendingDeliveryWaitMs }: HandlerDeps): ServiceImpl<typeof DeliveryApiService> {
  const { ingestion, delivery } = clients;
  const options = (ctx: HandlerContext) => unaryCallOptions(ctx, callTimeoutMs);

  /** The account of the call, after checking it owns `deliveryId`. */
  const owner = async (deliveryId: string, ctx: HandlerContext): Promise<string> => {
    const account = accountOf(ctx);
    await requireOwnDelivery(delivery, deliveryId, account, options(ctx));
    return account;
  };

  return {
    async scheduleDelivery(request, ctx) {
      const account = accountOf(ctx);
      const idempotencyKey = resolveIdempotencyKey(request.idempotencyKey, ctx.requestHeader);
      const internal = {
        idempotencyKey,
        ownerId: account,
        pickup: locationToInternal(request.pickup),
        dropoff: locationToInternal(request.dropoff),
        pickupTime: request.pickupTime,
        deadline: request.deadline,
        expedited: request.expedited,
        // The public contract: an unset confirmation type means none is required.
        confirmationRequired:
          request.confirmationRequired === PublicConfirmationType.UNSPECIFIED
            ? ConfirmationType.NONE
            : confirmationTypeToInternal(request.confirmationRequired),
        packages: packagesToInternal(request.packageInfo),
      };
      const answer = await relay(() => ingestion.scheduleDelivery(internal, options(ctx)), schedulePathToPublic);
      return { deliveryId: answer.deliveryId, acceptTime: answer.acceptTime };
    },

    async rescheduleDelivery(request, ctx) {
      const account = await owner(request.deliveryId, ctx);
      const answer = await relay(() => ingestion.rescheduleDelivery(rescheduleCommand(request, account), options(ctx)));
      return { deliveryId: answer.deliveryId, acceptTime: answer.acceptTime };
    },

    async cancelDelivery(request, ctx) {
      const account = await owner(request.deliveryId, ctx);
      const answer = await relay(() =>
        ingestion.cancelDelivery({ deliveryId: request.deliveryId, ownerId: account, reason: request.reason }, options(ctx)),
      );
      return { deliveryId: answer.deliveryId, acceptTime: answer.acceptTime };
    },

    async getDelivery(request, ctx) {
      const found = await getOwnDelivery(delivery, request.deliveryId, accountOf(ctx), options(ctx));
      return { delivery: found && deliveryFromInternal(found) };
    },

    async getDeliveryOwner(request, ctx) {
      const account = await owner(request.deliveryId, ctx);
      return { deliveryId: request.deliveryId, ownerId: account };
    },

    async getDeliveryStatus(request, ctx) {
      await owner(request.deliveryId, ctx);
      const answer = await relay(() => delivery.getDeliveryStatus({ deliveryId: request.deliveryId }, options(ctx)));
      return { status: answer.status && statusFromInternal(answer.status) };
    },

    async confirmDelivery(request, ctx) {
      await owner(request.deliveryId, ctx);
      const answer = await relay(() =>
        delivery.confirmDelivery(
          {
            deliveryId: request.deliveryId,
            confirmationType: confirmationTypeToInternal(request.confirmationType),
            confirmTime: request.confirmTime,
            proofReference: request.proofReference,
          },
          options(ctx),
        ),
      );
      return { delivery: answer.delivery && deliveryFromInternal(answer.delivery) };
    },

    async listDeliveries(request, ctx) {
      const account = accountOf(ctx);
      const answer = await relay(() =>
        delivery.listDeliveries(
          { ownerId: account, pageSize: request.pageSize, pageToken: request.pageToken },
          options(ctx),
        ),
      );
      return { deliveries: answer.deliveries.map(deliveryFromInternal), nextPageToken: answer.nextPageToken };
    },

    async getDeliveryHistory(request, ctx) {
      await owner(request.deliveryId, ctx);
      const answer = await relay(() => delivery.getDeliveryHistory({ deliveryId: request.deliveryId }, options(ctx)));
      return { events: answer.events.map(eventFromInternal) };
    },

    async *watchDelivery(request, ctx) {
      // Following a delivery right after scheduling it is the common case: wait for it to exist.
      await awaitOwnDelivery(delivery, request.deliveryId, accountOf(ctx), () => options(ctx), pendingDeliveryWaitMs);
      const updates = delivery.watchDelivery(
        { deliveryId: request.deliveryId, afterSequence: request.afterSequence, includePositions: request.includePositions },
        streamCallOptions(ctx),
      );
      yield* relayWatch(updates, watchUpdateFromInternal);
    },
  };
}
