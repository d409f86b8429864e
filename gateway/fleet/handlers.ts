/**
 * The handlers of the public `dronedelivery.api.v1.FleetApiService`, for operators: every method
 * first requires the `operator` role of the caller's bearer token (PERMISSION_DENIED otherwise),
 * then reads the Drone and Delivery services through the gateway's internal clients.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { FleetApiService } from "../../gen/dronedelivery/api/v1/fleet_api_service_pb.js";
import { DroneStatus as InternalDroneStatus, type Drone as InternalDrone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { requireRole } from "../auth.js";
import { streamCallOptions, unaryCallOptions } from "../call-options.js";
import { relay } from "../errors.js";
import type { HandlerDeps } from "../handler-deps.js";
import { deliveryFromInternal } from "../v1/mapping.js";
import {
  deliveryStageToInternal,
  droneFromInternal,
  droneStatusToInternal,
  failedDeliveryFromInternal,
  publicStageName,
  watchedDrone,
  watchedLocation,
} from "./mapping.js";

/** The role every method of the fleet API requires. */
export const FLEET_ROLE = "operator";

/** Failed deliveries the summary lists. */
export const SUMMARY_FAILURES = 20;

/** Drones read per internal page when the summary counts the fleet. */
const COUNT_PAGE_SIZE = 1000;

export function fleetApiHandlers(deps: HandlerDeps): ServiceImpl<typeof FleetApiService> {
  const { drone, delivery } = deps.clients;
  const unary = (ctx: HandlerContext) => unaryCallOptions(ctx, deps.callTimeoutMs);

  /** Every drone of the fleet, page by page. */
  async function wholeFleet(ctx: HandlerContext): Promise<InternalDrone[]> {
    const drones: InternalDrone[] = [];
    let pageToken = "";
    do {
      const page = await relay(() => drone.listDrones({ pageSize: COUNT_PAGE_SIZE, pageToken }, unary(ctx)));
      drones.push(...page.drones);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return drones;
  }

  return {
    async listDrones(request, ctx) {
      requireRole(ctx, FLEET_ROLE);
      const page = await relay(() =>
        drone.listDrones({ pageSize: request.pageSize, pageToken: request.pageToken, status: droneStatusToInternal(request.status) }, unary(ctx)),
      );
      return { drones: page.drones.map(droneFromInternal), nextPageToken: page.nextPageToken };
    },

    async *watchFleet(_request, ctx) {
      requireRole(ctx, FLEET_ROLE);
      const updates = drone.watchFleet({}, streamCallOptions(ctx));
      const iterator = updates[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await relay(() => iterator.next());
          if (next.done) return;
          const { update } = next.value;
          if (update.case === "drone") yield watchedDrone(update.value);
          else if (update.case === "location") yield watchedLocation(update.value);
        }
      } finally {
        await iterator.return?.();
      }
    },

    async getFleetSummary(_request, ctx) {
      requireRole(ctx, FLEET_ROLE);
      const [drones, counts] = await Promise.all([
        wholeFleet(ctx),
        relay(() => delivery.getStageCounts({ recentFailuresLimit: SUMMARY_FAILURES }, unary(ctx))),
      ]);
      const busy = drones.filter((d) => d.status === InternalDroneStatus.ASSIGNED).length;
      const outOfService = drones.filter((d) => d.status === InternalDroneStatus.OUT_OF_SERVICE).length;
      return {
        dronesTotal: drones.length,
        dronesBusy: busy,
        dronesOutOfService: outOfService,
        utilization: drones.length === 0 ? 0 : busy / drones.length,
        deliveriesByStage: Object.fromEntries(counts.counts.map((c) => [publicStageName(c.stage), Number(c.count)])),
        deliveriesTotal: Number(counts.total),
        recentFailures: counts.recentFailures.map(failedDeliveryFromInternal),
      };
    },

    async listFleetDeliveries(request, ctx) {
      requireRole(ctx, FLEET_ROLE);
      const page = await relay(() =>
        delivery.listAllDeliveries(
          { stage: deliveryStageToInternal(request.stage), pageSize: request.pageSize, pageToken: request.pageToken },
          unary(ctx),
        ),
      );
      return {
        deliveries: page.deliveries.map((d) => ({ ownerId: d.ownerId, delivery: deliveryFromInternal(d) })),
        nextPageToken: page.nextPageToken,
      };
    },
  };
}
