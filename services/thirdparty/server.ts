/**
 * The ThirdPartyTransportService handlers, on requests the binding has checked against the field
 * rules of the contract: the booking rules and the store.
 */
import { PickupStatus, ThirdPartyTransportService } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { notFound } from "../../lib/grpc/errors.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { cancelledError, cancelPickup, deadlineError, planPickup } from "./booking.js";
import type { ThirdPartyConfig } from "./config.js";
import { updateExistingPickup, type PickupStore } from "./store.js";

export function thirdPartyRegistration(store: PickupStore, config: ThirdPartyConfig): Registration {
  return registration(ThirdPartyTransportService, {
    async arrangePickup(request) {
      const now = new Date();
      const planned = planPickup(request, config, now);
      // One booking per delivery: `kv.create` decides between concurrent first arranges, and every
      // other call answers the stored booking as it is.
      const result = await store.mutate(request.deliveryId, (current) => {
        if (current) {
          if (current.status === PickupStatus.CANCELLED) throw cancelledError(current);
          return UNCHANGED;
        }
        const late = deadlineError(planned, request.deadline);
        if (late) throw late;
        return planned;
      });
      return { pickup: result.value };
    },

    async cancelPickup(request) {
      const now = new Date();
      const result = await updateExistingPickup(store, request.deliveryId, (current) =>
        current.status === PickupStatus.CANCELLED ? UNCHANGED : cancelPickup(current, request.reason, now),
      );
      if (!result) return { cancelled: false };
      return { pickup: result.value, cancelled: result.changed };
    },

    async getPickup(request) {
      const found = await store.get(request.deliveryId);
      if (!found) throw notFound(`pickup of delivery ${request.deliveryId}`);
      return { pickup: found.value };
    },
  });
}
