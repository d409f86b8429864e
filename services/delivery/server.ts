/**
 * The DeliveryService handlers: the ledger, the history or the watcher. Requests reach them checked
 * against the field rules of the contract (the binding refuses the others).
 */
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { create } from "@bufbuild/protobuf";
import { StageCountSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { unavailable } from "../../lib/grpc/errors.js";
import type { DeliveryFleetView } from "./fleet-view.js";
import type { DeliveryHistory } from "./history.js";
import { encodePageToken } from "./page-token.js";
import type { DeliveryLedger } from "./ledger.js";
import { statusOf } from "./status.js";
import type { DeliveryWatcher } from "./watch.js";
import {
  allDeliveriesScope,
  confirmationOf,
  listAllQuery,
  listQuery,
  monthQuery,
  planChange,
  recentFailuresLimit,
} from "./queries.js";

/** How long ListAllDeliveries and GetStageCounts wait for the delivery view to catch up. */
const VIEW_SYNC_TIMEOUT_MS = 3_000;

export function deliveryRegistration(
  ledger: DeliveryLedger,
  history: DeliveryHistory,
  watcher: DeliveryWatcher,
  view?: DeliveryFleetView,
): Registration {
  /** The view, caught up with every delivery write made before the call. */
  const syncedView = async (): Promise<DeliveryFleetView> => {
    if (!view) throw unavailable("the delivery view is not kept on this instance");
    if (!(await view.sync(VIEW_SYNC_TIMEOUT_MS))) throw unavailable("the delivery view is catching up; retry shortly", 1_000);
    return view;
  };
  return registration(DeliveryService, {
    async openDelivery(request) {
      return ledger.open(request);
    },
    async scheduleDelivery(request) {
      return ledger.schedule(request);
    },

    async getDelivery(request) {
      return { delivery: await ledger.get(request.deliveryId) };
    },

    async getDeliveryOwner(request) {
      const delivery = await ledger.get(request.deliveryId);
      return { deliveryId: delivery.deliveryId, ownerId: delivery.ownerId };
    },

    async getDeliveryStatus(request) {
      return { status: statusOf(await ledger.get(request.deliveryId)) };
    },

    async rescheduleDelivery(request) {
      const { delivery } = await ledger.reschedule(request.deliveryId, planChange(request));
      return { delivery };
    },

    async cancelDelivery(request) {
      const { delivery } = await ledger.cancel(request.deliveryId, request.reason);
      return { delivery };
    },

    async failDelivery(request) {
      const { delivery } = await ledger.fail(request.deliveryId, request.reason, request.failureCode, request.request);
      return { delivery };
    },

    async confirmDelivery(request) {
      const { delivery } = await ledger.confirm(request.deliveryId, confirmationOf(request));
      return { delivery };
    },

    async listDeliveries(request) {
      return ledger.list(listQuery(request));
    },

    async getDeliverySummary(request) {
      const query = monthQuery(request);
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
      return { events: await history.events(request.deliveryId) };
    },

    watchDelivery(request, ctx) {
      return watcher.watch(request, ctx);
    },

    async listAllDeliveries(request) {
      const query = listAllQuery(request);
      const page = (await syncedView()).page(query.stage, query.pageSize, query.after);
      return {
        deliveries: page.deliveries,
        nextPageToken: page.lastPosition === undefined ? "" : encodePageToken(allDeliveriesScope(query.stage), page.lastPosition),
      };
    },

    async getStageCounts(request) {
      const failures = recentFailuresLimit(request);
      const counts = (await syncedView()).counts(failures);
      return {
        counts: [...counts.counts.entries()]
          .sort(([a], [b]) => a - b)
          .map(([stage, count]) => create(StageCountSchema, { stage, count: BigInt(count) })),
        total: BigInt(counts.total),
        recentFailures: counts.recentFailures,
      };
    },
  });
}
