/**
 * The DroneSchedulerService handlers, on requests the binding has checked against the field rules
 * of the contract.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { YearMonthSchema } from "../../gen/dronedelivery/common/v1/time_pb.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { notFound } from "../../lib/grpc/errors.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { DroneAssigner } from "./assign.js";
import { droneAt } from "./drone-record.js";
import type { SyncedFleetView } from "./fleet-index.js";
import type { Logger } from "pino";
import type { NatsConnection } from "nats";
import { unavailable } from "../../lib/grpc/errors.js";
import { watchFleet } from "./watch-fleet.js";
import type { FlightTiming } from "./flight.js";
import { listDrones } from "./list-drones.js";
import { releaseAssignment } from "./release.js";
import { rerouteAssignment } from "./reroute.js";
import type { DroneStore } from "./store.js";
import { ownerUtilization } from "./utilization.js";
import { listDronesQuery } from "./queries.js";

export interface DroneServerOptions {
  readonly claimLeaseMs: number;
  readonly timing: FlightTiming;
  readonly now?: () => Date;
  /** The instance's fleet index, searched by AssignDrone (see fleet-index.ts). */
  readonly index?: SyncedFleetView;
  readonly log?: Logger;
  /** The service's NATS connection, for WatchFleet's subscription to the fleet's positions. */
  readonly nc?: NatsConnection;
}

export function droneRegistration(store: DroneStore, options: DroneServerOptions): Registration {
  const now = options.now ?? (() => new Date());
  const { timing } = options;
  const assigner = new DroneAssigner(store, {
    claimLeaseMs: options.claimLeaseMs,
    timing,
    now,
    ...(options.index ? { index: options.index } : {}),
    ...(options.log ? { log: options.log } : {}),
  });

  return registration(DroneSchedulerService, {
    async assignDrone(request) {
      return assigner.assign(request);
    },

    async releaseAssignment(request) {
      return releaseAssignment(store, request.deliveryId, request.reason, now, timing);
    },

    async rerouteAssignment(request) {
      return { assignment: await rerouteAssignment(store, request.deliveryId, request.dropoff!, now, timing) };
    },

    async getAssignment(request) {
      const found = await store.getAssignment(request.deliveryId);
      if (!found) throw notFound(`assignment of delivery ${request.deliveryId}`);
      return { assignment: found.value };
    },

    async getDrone(request) {
      const found = await store.getDrone(request.droneId);
      if (!found) throw notFound(`drone ${request.droneId}`);
      return { drone: droneAt(found.value, now().getTime()) };
    },

    async listDrones(request) {
      return listDrones(store, listDronesQuery(request), now().getTime());
    },

    async getUtilization(request) {
      const { year, month } = request.month!;
      const usage = await ownerUtilization(store, request.ownerId, year, month, now(), timing.timeScale);
      return {
        ownerId: request.ownerId,
        month: create(YearMonthSchema, { year, month }),
        assignmentCount: BigInt(usage.assignmentCount),
        completedCount: BigInt(usage.completedCount),
        distanceKm: usage.distanceKm,
        assignedDuration: durationFromMs(usage.assignedMs),
      };
    },

    watchFleet(_request, ctx) {
      const { nc } = options;
      if (!nc) throw unavailable("the fleet's positions are not available on this instance");
      return watchFleet(store, nc, ctx.signal, () => now().getTime());
    },
  });
}
