/**
 * The handlers of the public `dronedelivery.api.v2.DeliveryApiService`: each maps the public
 * request onto the internal operations every version shares (../delivery-operations.ts: the
 * caller's account, ownership, idempotency, deadlines, the internal calls) and their answers back
 * (./mapping.ts). v2 needs no internal contract of its own: Ingestion already takes a list of
 * packages and the Delivery service already keeps them and the ETAs.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { DeliveryApiService } from "../../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import { deliveryOperations } from "../delivery-operations.js";
import type { HandlerDeps } from "../handler-deps.js";
import { locationToInternal } from "../shared-mapping.js";
import {
  confirmationTypeToInternal,
  deliveryFromInternal,
  eventFromInternal,
  parcelsToInternal,
  priorityToExpedited,
  schedulePathToPublic,
  statusFromInternal,
  watchUpdateFromInternal,
} from "./mapping.js";

export function deliveryApiV2Handlers(deps: HandlerDeps): ServiceImpl<typeof DeliveryApiService> {
  const operations = deliveryOperations(deps);
  return {
    scheduleDelivery(request, ctx) {
      // The contract's rules (a defined priority among them) were checked before the handler ran.
      return operations.schedule(
        {
          idempotencyKey: request.idempotencyKey,
          pickup: locationToInternal(request.pickup),
          dropoff: locationToInternal(request.dropoff),
          pickupTime: request.pickupTime,
          deadline: request.deadline,
          expedited: priorityToExpedited(request.priority),
          confirmationRequired: confirmationTypeToInternal(request.confirmationRequired),
          packages: parcelsToInternal(request.parcels),
        },
        ctx,
        schedulePathToPublic,
      );
    },

    async getDelivery(request, ctx) {
      const found = await operations.get(request.deliveryId, ctx);
      return { delivery: found && deliveryFromInternal(found) };
    },

    async listDeliveries(request, ctx) {
      const page = await operations.list(request, ctx);
      return { deliveries: page.deliveries.map(deliveryFromInternal), nextPageToken: page.nextPageToken };
    },

    rescheduleDelivery: (request, ctx) => operations.reschedule(request, ctx),

    cancelDelivery: (request, ctx) => operations.cancel(request, ctx),

    async getDeliveryStatus(request, ctx) {
      const status = await operations.status(request.deliveryId, ctx);
      return { status: status && statusFromInternal(status, new Date()) };
    },

    async confirmDelivery(request, ctx) {
      const confirmed = await operations.confirm(
        { ...request, confirmationType: confirmationTypeToInternal(request.confirmationType) },
        ctx,
      );
      return { delivery: confirmed && deliveryFromInternal(confirmed) };
    },

    async getDeliveryHistory(request, ctx) {
      return { events: (await operations.history(request.deliveryId, ctx)).map(eventFromInternal) };
    },

    watchDelivery: (request, ctx) => operations.watch(request, ctx, watchUpdateFromInternal),
  };
}
