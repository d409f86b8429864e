/** The DeliveryService handlers: validation first, then the ledger, the history or the watcher. */
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import type { DeliveryHistory } from "./history.js";
import type { DeliveryLedger } from "./ledger.js";
import { statusOf } from "./status.js";
import type { DeliveryWatcher } from "./watch.js";
import {
  requireDeliveryId,
  validateCancel,
  validateConfirm,
  validateFail,
  validateList,
  validateOpen,
  validateReschedule,
  validateSchedule,
  validateSummary,
} from "./validation.js";

export function deliveryRegistration(ledger: DeliveryLedger, history: DeliveryHistory, watcher: DeliveryWatcher): Registration {
  return registration(DeliveryService, {
    async openDelivery(request) {
      validateOpen(request);
      return ledger.open(request);
    },
    async scheduleDelivery(request) {
      validateSchedule(request, new Date());
      return ledger.schedule(request);
    },

    async getDelivery(request) {
      requireDeliveryId(request.deliveryId);
      return { delivery: await ledger.get(request.deliveryId) };
    },

    async getDeliveryOwner(request) {
      requireDeliveryId(request.deliveryId);
      const delivery = await ledger.get(request.deliveryId);
      return { deliveryId: delivery.deliveryId, ownerId: delivery.ownerId };
    },

    async getDeliveryStatus(request) {
      requireDeliveryId(request.deliveryId);
      return { status: statusOf(await ledger.get(request.deliveryId)) };
    },

    async rescheduleDelivery(request) {
      const change = validateReschedule(request, new Date());
      const { delivery } = await ledger.reschedule(request.deliveryId, change);
      return { delivery };
    },

    async cancelDelivery(request) {
      validateCancel(request);
      const { delivery } = await ledger.cancel(request.deliveryId, request.reason);
      return { delivery };
    },

    async failDelivery(request) {
      validateFail(request);
      const { delivery } = await ledger.fail(request.deliveryId, request.reason, request.failureCode, request.request);
      return { delivery };
    },

    async confirmDelivery(request) {
      const confirmation = validateConfirm(request, new Date());
      const { delivery } = await ledger.confirm(request.deliveryId, confirmation);
      return { delivery };
    },

    async listDeliveries(request) {
      return ledger.list(validateList(request));
    },

    async getDeliverySummary(request) {
      const query = validateSummary(request);
      const counts = await ledger.summary(query);
      return {
        ownerId: query.ownerId,
        month: { year: query.year, month: query.month },
        deliveryCount: BigInt(counts.deliveryCount),
        completedCount: BigInt(counts.completedCount),
        cancelledCount: BigInt(counts.cancelledCount),
        failedCount: BigInt(counts.failedCount),
      };
    },

    async getDeliveryHistory(request) {
      requireDeliveryId(request.deliveryId);
      return { events: await history.events(request.deliveryId) };
    },

    watchDelivery(request, ctx) {
      return watcher.watch(request, ctx);
    },
  });
}
