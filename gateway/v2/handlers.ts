/**
 * The handlers of the public `dronedelivery.api.v2.DeliveryApiService`: each maps the public
 * request onto the internal operations every version shares (../delivery-operations.ts: the
 * caller's account, ownership, idempotency, deadlines, the internal calls) and their answers back
 * (./mapping.ts). v2 needs no internal contract of its own: Ingestion already takes a list of
 * packages and the Delivery service already keeps them and the ETAs.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { DeliveryApiService } from "../../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import { PrioritySchema, type Priority } from "../../gen/dronedelivery/api/v2/resources_pb.js";
import { Violations } from "../../lib/validation/violations.js";
import { deliveryOperations } from "../delivery-operations.js";
import { publicError } from "../errors.js";
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

/**
 * The one check the internal services cannot make: the internal contract only knows whether a
 * delivery is expedited, so a priority v2 does not define must be refused here. Every other field
 * is checked by Ingestion, with its field paths renamed to the public request's.
 */
function checkPriority(priority: Priority): void {
  try {
    new Violations().enumValue("priority", priority, PrioritySchema, { allowUnspecified: true }).throwIfAny();
  } catch (error) {
    throw publicError(error);
  }
}

export function deliveryApiV2Handlers(deps: HandlerDeps): ServiceImpl<typeof DeliveryApiService> {
  const operations = deliveryOperations(deps);
  return {
    scheduleDelivery(request, ctx) {
      checkPriority(request.priority);
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
