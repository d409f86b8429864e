/**
 * Mapping between the public v1 messages and the internal contracts. The public API evolves apart
 * from the internal one: enums are matched by value name, the single public parcel is the
 * internal one-element packages list, and the Delivery view shows the carrier and confirmation
 * time instead of internal ids and records. Helpers every version shares are in
 * ../shared-mapping.ts.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ConfirmationTypeSchema as PublicConfirmationTypeSchema,
  DeliveryEventSchema,
  DeliverySchema as PublicDeliverySchema,
  DeliveryStageSchema as PublicDeliveryStageSchema,
  FailureCodeSchema as PublicFailureCodeSchema,
  DeliveryStatusSchema as PublicDeliveryStatusSchema,
  LocationSchema as PublicLocationSchema,
  PackageInfoSchema as PublicPackageInfoSchema,
  PackageSizeSchema as PublicPackageSizeSchema,
  type ConfirmationType as PublicConfirmationType,
  type Delivery as PublicDelivery,
  type DeliveryEvent,
  type DeliveryStage as PublicDeliveryStage,
  type FailureCode as PublicFailureCode,
  type DeliveryStatus as PublicDeliveryStatus,
  type Location as PublicLocation,
  type PackageInfo as PublicPackageInfo,
} from "../../gen/dronedelivery/api/v1/resources_pb.js";
import type { WatchDeliveryResponseSchema as PublicWatchResponseSchema } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import {
  ConfirmationTypeSchema,
  PackageSizeSchema,
  type PackageInfoSchema,
  type ConfirmationType,
  type PackageInfo,
} from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import {
  DeliveryFailureCodeSchema,
  DeliveryStageSchema,
  type Delivery,
  type DeliveryFailureCode,
  type DeliveryStage,
  type DeliveryStatus,
} from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import type { WatchDeliveryResponse } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { enumByName } from "../shared-mapping.js";

export { locationToInternal } from "../shared-mapping.js";

/** The carrier shown for deliveries flown by the platform's own fleet. */
export const DRONE_CARRIER = "drone";

// --- Enums ------------------------------------------------------------------------------------

export function confirmationTypeToInternal(value: PublicConfirmationType): ConfirmationType {
  return enumByName(value, PublicConfirmationTypeSchema, ConfirmationTypeSchema);
}

export function confirmationTypeFromInternal(value: ConfirmationType): PublicConfirmationType {
  return enumByName(value, ConfirmationTypeSchema, PublicConfirmationTypeSchema);
}

export function stageFromInternal(value: DeliveryStage): PublicDeliveryStage {
  return enumByName(value, DeliveryStageSchema, PublicDeliveryStageSchema);
}

export function failureCodeFromInternal(value: DeliveryFailureCode): PublicFailureCode {
  return enumByName(value, DeliveryFailureCodeSchema, PublicFailureCodeSchema);
}

// --- Values -----------------------------------------------------------------------------------

export function locationFromInternal(value: Location | undefined): PublicLocation | undefined {
  return value && create(PublicLocationSchema, { latitude: value.latitude, longitude: value.longitude, altitude: value.altitude });
}

/** The public single parcel as the internal packages list (empty when none was given). */
export function packagesToInternal(value: PublicPackageInfo | undefined): MessageInitShape<typeof PackageInfoSchema>[] {
  if (!value) return [];
  return [
    {
      packageId: value.packageId,
      size: enumByName(value.size, PublicPackageSizeSchema, PackageSizeSchema),
      weightKg: value.weightKg,
      tag: value.tag,
    },
  ];
}

/** The first internal parcel as the public single one. */
export function packageFromInternal(packages: readonly PackageInfo[]): PublicPackageInfo | undefined {
  const first = packages[0];
  return (
    first &&
    create(PublicPackageInfoSchema, {
      packageId: first.packageId,
      size: enumByName(first.size, PackageSizeSchema, PublicPackageSizeSchema),
      weightKg: first.weightKg,
      tag: first.tag,
    })
  );
}

/** Internal field paths of ScheduleDelivery renamed to the public request's. */
export function schedulePathToPublic(path: string): string {
  return path.replace(/^packages(\[\d+\])?/, "package_info");
}

// --- Resources --------------------------------------------------------------------------------

/** Who carries the parcel: "drone", or the outside carrier with its tracking id. */
function carrierOf(delivery: Delivery): { carrier: string; trackingId: string } {
  switch (delivery.carrier.case) {
    case "droneId":
      return { carrier: DRONE_CARRIER, trackingId: "" };
    case "thirdParty":
      return { carrier: delivery.carrier.value.carrier, trackingId: delivery.carrier.value.trackingId };
    default:
      return { carrier: "", trackingId: "" };
  }
}

export function deliveryFromInternal(delivery: Delivery): PublicDelivery {
  const { carrier, trackingId } = carrierOf(delivery);
  return create(PublicDeliverySchema, {
    deliveryId: delivery.deliveryId,
    pickup: locationFromInternal(delivery.pickup),
    dropoff: locationFromInternal(delivery.dropoff),
    pickupTime: delivery.pickupTime,
    deadline: delivery.deadline,
    expedited: delivery.expedited,
    confirmationRequired: confirmationTypeFromInternal(delivery.confirmationRequired),
    packageInfo: packageFromInternal(delivery.packages),
    carrier,
    trackingId,
    stage: stageFromInternal(delivery.stage),
    endReason: delivery.endReason,
    failureCode: failureCodeFromInternal(delivery.failureCode),
    confirmTime: delivery.confirmation?.confirmTime,
    createTime: delivery.createTime,
    updateTime: delivery.updateTime,
  });
}

export function statusFromInternal(status: DeliveryStatus): PublicDeliveryStatus {
  return create(PublicDeliveryStatusSchema, {
    deliveryId: status.deliveryId,
    stage: stageFromInternal(status.stage),
    lastKnownLocation: locationFromInternal(status.lastKnownLocation),
    pickupEta: status.pickupEta,
    deliveryEta: status.deliveryEta,
    updateTime: status.updateTime,
    endReason: status.endReason,
    failureCode: failureCodeFromInternal(status.failureCode),
  });
}

export function eventFromInternal(event: DeliveryStatusEvent): DeliveryEvent {
  return create(DeliveryEventSchema, {
    deliveryId: event.deliveryId,
    stage: stageFromInternal(event.stage),
    location: locationFromInternal(event.location),
    deliveryEta: event.deliveryEta,
    reason: event.reason,
    failureCode: failureCodeFromInternal(event.failureCode),
    eventTime: event.eventTime,
  });
}

/** One update of the internal watch stream as the public one; undefined for an empty update. */
export function watchUpdateFromInternal(
  update: WatchDeliveryResponse,
): MessageInitShape<typeof PublicWatchResponseSchema> | undefined {
  switch (update.update.case) {
    case "statusEvent":
      return { sequence: update.sequence, update: { case: "event", value: eventFromInternal(update.update.value) } };
    case "position": {
      const position = locationFromInternal(update.update.value.location);
      return position && { sequence: update.sequence, update: { case: "position", value: position } };
    }
    default:
      return undefined;
  }
}
