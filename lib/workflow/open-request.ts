/**
 * The Delivery service's OpenDeliveryRequest for an accepted ScheduleDeliveryCommand: what the
 * workflow opens the delivery with, what the Delivery service opens it from when a read comes
 * before the workflow, and what the Supervisor records a never-opened delivery Failed from.
 */
import { create } from "@bufbuild/protobuf";
import { OpenDeliveryRequestSchema, type OpenDeliveryRequest } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { ScheduleDeliveryCommand } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";

export function openRequestOf(command: ScheduleDeliveryCommand): OpenDeliveryRequest {
  return create(OpenDeliveryRequestSchema, {
    deliveryId: command.deliveryId,
    ownerId: command.ownerId,
    pickup: command.pickup,
    dropoff: command.dropoff,
    pickupTime: command.pickupTime,
    deadline: command.deadline,
    expedited: command.expedited,
    confirmationRequired: command.confirmationRequired,
    packages: command.packages,
    acceptTime: command.acceptTime,
  });
}
