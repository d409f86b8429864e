/**
 * The operators' fleet API (`dronedelivery.api.v1.FleetApiService`) in the internal contracts'
 * terms and back: drones and their location events from the Drone service, deliveries and stage
 * counts from the Delivery service.
 */
import { create } from "@bufbuild/protobuf";
import {
  FlightStageSchema as InternalFlightStageSchema,
  DroneStatusSchema as InternalDroneStatusSchema,
  type Drone as InternalDrone,
} from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type { DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import type { Delivery as InternalDelivery, DeliveryStage as InternalDeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStageSchema as InternalDeliveryStageSchema } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { Location as InternalLocation } from "../../gen/dronedelivery/common/v1/location_pb.js";
import {
  DroneSchema,
  DroneStatusSchema,
  FailedDeliverySchema,
  FlightStageSchema,
  WatchFleetResponseSchema,
  type Drone,
  type DroneStatus,
  type FailedDelivery,
  type FlightStage,
  type WatchFleetResponse,
} from "../../gen/dronedelivery/api/v1/fleet_api_service_pb.js";
import { DeliveryStageSchema, LocationSchema, type DeliveryStage, type Location } from "../../gen/dronedelivery/api/v1/resources_pb.js";
import { enumByName } from "../shared-mapping.js";
import { failureCodeFromInternal } from "../v1/mapping.js";

function location(value: InternalLocation | undefined): Location | undefined {
  return value && create(LocationSchema, { latitude: value.latitude, longitude: value.longitude, altitude: value.altitude });
}

export const flightStageFromInternal = (value: number): FlightStage => enumByName(value, InternalFlightStageSchema, FlightStageSchema);
export const droneStatusToInternal = (value: DroneStatus): number => enumByName(value, DroneStatusSchema, InternalDroneStatusSchema);
const droneStatusFromInternal = (value: number): DroneStatus => enumByName(value, InternalDroneStatusSchema, DroneStatusSchema);
export const deliveryStageToInternal = (value: DeliveryStage): InternalDeliveryStage =>
  enumByName(value, DeliveryStageSchema, InternalDeliveryStageSchema);

export function droneFromInternal(drone: InternalDrone): Drone {
  return create(DroneSchema, {
    droneId: drone.droneId,
    status: droneStatusFromInternal(drone.status),
    stage: flightStageFromInternal(drone.stage),
    position: location(drone.position),
    homeBase: location(drone.homeBase),
    maxPayloadKg: drone.maxPayloadKg,
    speedMps: drone.speedMps,
    batteryPercent: drone.batteryPercent,
    deliveryId: drone.deliveryId,
    updateTime: drone.updateTime,
  });
}

/** A drone as it is at the start of a watch: its state now, sequence 0. */
export function watchedDrone(drone: InternalDrone): WatchFleetResponse {
  return create(WatchFleetResponseSchema, {
    droneId: drone.droneId,
    deliveryId: drone.deliveryId,
    position: location(drone.position),
    stage: flightStageFromInternal(drone.stage),
    batteryPercent: drone.batteryPercent,
    speedMps: 0,
    eventTime: drone.updateTime,
    droneSequence: 0n,
  });
}

export function watchedLocation(event: DroneLocationEvent): WatchFleetResponse {
  return create(WatchFleetResponseSchema, {
    droneId: event.droneId,
    deliveryId: event.deliveryId,
    position: location(event.position),
    stage: flightStageFromInternal(event.stage),
    batteryPercent: event.batteryPercent,
    speedMps: event.speedMps,
    eventTime: event.eventTime,
    droneSequence: event.sequence,
  });
}

export function failedDeliveryFromInternal(delivery: InternalDelivery): FailedDelivery {
  return create(FailedDeliverySchema, {
    deliveryId: delivery.deliveryId,
    ownerId: delivery.ownerId,
    failureCode: failureCodeFromInternal(delivery.failureCode),
    reason: delivery.endReason,
    updateTime: delivery.updateTime,
  });
}

/** The public name of an internal delivery stage, e.g. `DELIVERY_STAGE_COMPLETED`. */
export function publicStageName(stage: InternalDeliveryStage): string {
  const number = enumByName(stage, InternalDeliveryStageSchema, DeliveryStageSchema);
  return DeliveryStageSchema.values.find((v) => v.number === number)?.name ?? String(number);
}
