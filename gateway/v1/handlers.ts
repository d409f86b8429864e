/**
 * The handlers of the public `dronedelivery.api.v1.DeliveryApiService`: each maps the public
 * request onto the internal operations every version shares (../delivery-operations.ts: the
 * caller's account, ownership, idempotency, deadlines, the internal calls) and their answers back
 * (./mapping.ts).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { deliveryOperations } from "../delivery-operations.js";
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

export function deliveryApiHandlers(deps: HandlerDeps): ServiceImpl<typeof DeliveryApiService> {
  const operations = deliveryOperations(deps);
  return {
    scheduleDelivery: (request, ctx) =>
      operations.schedule(
        {
          idempotencyKey: request.idempotencyKey,
          pickup: locationToInternal(request.pickup),
          dropoff: locationToInternal(request.dropoff),
          pickupTime: request.pickupTime,
          deadline: request.deadline,
          expedited: request.expedited,
          confirmationRequired: confirmationTypeToInternal(request.confirmationRequired),
          packages: packagesToInternal(request.packageInfo),
        },
        ctx,
        schedulePathToPublic,
      ),

    rescheduleDelivery: (request, ctx) => operations.reschedule(request, ctx),

    cancelDelivery: (request, ctx) => operations.cancel(request, ctx),

    async getDelivery(request, ctx) {
      const found = await operations.get(request.deliveryId, ctx);
      return { delivery: found && deliveryFromInternal(found) };
    },

    async getDeliveryOwner(request, ctx) {
      return { deliveryId: request.deliveryId, ownerId: await operations.owner(request.deliveryId, ctx) };
    },

    async getDeliveryStatus(request, ctx) {
      const status = await operations.status(request.deliveryId, ctx);
      return { status: status && statusFromInternal(status) };
    },

    async confirmDelivery(request, ctx) {
      const confirmed = await operations.confirm(
        { ...request, confirmationType: confirmationTypeToInternal(request.confirmationType) },
        ctx,
      );
      return { delivery: confirmed && deliveryFromInternal(confirmed) };
    },

    async listDeliveries(request, ctx) {
      const page = await operations.list(request, ctx);
      return { deliveries: page.deliveries.map(deliveryFromInternal), nextPageToken: page.nextPageToken };
    },

    async getDeliveryHistory(request, ctx) {
      return { events: (await operations.history(request.deliveryId, ctx)).map(eventFromInternal) };
    },

    watchDelivery: (request, ctx) => operations.watch(request, ctx, watchUpdateFromInternal),
  };
}
