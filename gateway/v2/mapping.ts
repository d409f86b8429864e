/**
 * Mapping between the public v2 messages and the internal contracts. The v2 parcels are the
 * internal packages list one for one (`parcel_id` is the internal `package_id`), priority is the
 * internal `expedited` flag, the carrier is a oneof instead of two strings, and estimated times
 * of arrival become one typed `Eta` with the time remaining. Enums and locations go through the
 * helpers every version shares (../shared-mapping.ts).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { WatchDeliveryResponseSchema as PublicWatchResponseSchema } from "../../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import {
  ConfirmationSchema as PublicConfirmationSchema,
  ConfirmationTypeSchema as PublicConfirmationTypeSchema,
  DeliveryEventSchema as PublicDeliveryEventSchema,
  DeliverySchema as PublicDeliverySchema,
  DeliveryStageSchema as PublicDeliveryStageSchema,
  FailureCodeSchema as PublicFailureCodeSchema,
  DeliveryStatusSchema as PublicDeliveryStatusSchema,
  EtaSchema,
  LocationSchema as PublicLocationSchema,
  ParcelSchema,
  ParcelSizeSchema,
  PositionUpdateSchema as PublicPositionUpdateSchema,
  Priority,
  type Confirmation as PublicConfirmation,
  type ConfirmationType as PublicConfirmationType,
  type Delivery as PublicDelivery,
  type DeliveryEvent as PublicDeliveryEvent,
  type DeliveryStage as PublicDeliveryStage,
  type FailureCode as PublicFailureCode,
  type DeliveryStatus as PublicDeliveryStatus,
  type Eta,
  type Location as PublicLocation,
  type Parcel,
  type PositionUpdate as PublicPositionUpdate,
} from "../../gen/dronedelivery/api/v2/resources_pb.js";
import type { Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import {
  ConfirmationTypeSchema,
  PackageSizeSchema,
  type ConfirmationType,
  type PackageInfo,
  type PackageInfoSchema,
} from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import {
  DeliveryFailureCodeSchema,
  DeliveryStageSchema,
  type Confirmation,
  type Delivery,
  type DeliveryFailureCode,
  type DeliveryStage,
  type DeliveryStatus,
} from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import type { PositionUpdate, WatchDeliveryResponse } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { enumByName } from "../shared-mapping.js";

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

/** The internal `expedited` flag: only Expedited is; unset means Standard. */
export function priorityToExpedited(value: Priority): boolean {
  return value === Priority.EXPEDITED;
}

export function priorityFromExpedited(expedited: boolean): Priority {
  return expedited ? Priority.EXPEDITED : Priority.STANDARD;
}

// --- Values -----------------------------------------------------------------------------------

export function locationFromInternal(value: Location | undefined): PublicLocation | undefined {
  return value && create(PublicLocationSchema, { latitude: value.latitude, longitude: value.longitude, altitude: value.altitude });
}

/** The public parcels as the internal packages list, one for one and in order. */
export function parcelsToInternal(parcels: readonly Parcel[]): MessageInitShape<typeof PackageInfoSchema>[] {
  return parcels.map((parcel) => ({
    packageId: parcel.parcelId,
    size: enumByName(parcel.size, ParcelSizeSchema, PackageSizeSchema),
    weightKg: parcel.weightKg,
    tag: parcel.tag,
  }));
}

export function parcelsFromInternal(packages: readonly PackageInfo[]): Parcel[] {
  return packages.map((p) =>
    create(ParcelSchema, {
      parcelId: p.packageId,
      size: enumByName(p.size, PackageSizeSchema, ParcelSizeSchema),
      weightKg: p.weightKg,
      tag: p.tag,
    }),
  );
}

/**
 * Internal field paths of ScheduleDelivery renamed to the public request's:
 * `packages[1].package_id` is `parcels[1].parcel_id`.
 */
export function schedulePathToPublic(path: string): string {
  return path.replace(/^packages(\[\d+\])?(\.package_id)?/, (_, index: string | undefined, id: string | undefined) =>
    `parcels${index ?? ""}${id ? ".parcel_id" : ""}`,
  );
}

/**
 * The estimates still ahead, with the time remaining until drop-off counted from `asOf` (never
 * negative); undefined when there is no estimate at all.
 */
export function etaOf(
  estimates: { readonly pickup?: Timestamp | undefined; readonly dropoff?: Timestamp | undefined },
  asOf: Date | undefined,
): Eta | undefined {
  if (!estimates.pickup && !estimates.dropoff) return undefined;
  const remaining =
    estimates.dropoff && asOf
      ? durationFromMs(Math.max(0, timestampDate(estimates.dropoff).getTime() - asOf.getTime()))
      : undefined;
  return create(EtaSchema, { pickupTime: estimates.pickup, dropoffTime: estimates.dropoff, remaining });
}

function dateOf(timestamp: Timestamp | undefined): Date | undefined {
  return timestamp && timestampDate(timestamp);
}

// --- Resources --------------------------------------------------------------------------------

/** Who carries the parcels: a drone of the fleet, or an outside carrier with its tracking id. */
function carrierOf(delivery: Delivery): MessageInitShape<typeof PublicDeliverySchema>["carrier"] {
  switch (delivery.carrier.case) {
    case "droneId":
      return { case: "drone", value: {} };
    case "thirdParty":
      return {
        case: "thirdParty",
        value: { name: delivery.carrier.value.carrier, trackingId: delivery.carrier.value.trackingId },
      };
    default:
      return { case: undefined };
  }
}

export function confirmationFromInternal(value: Confirmation | undefined): PublicConfirmation | undefined {
  return (
    value &&
    create(PublicConfirmationSchema, {
      type: confirmationTypeFromInternal(value.type),
      confirmTime: value.confirmTime,
      proofReference: value.proofReference,
    })
  );
}

export function deliveryFromInternal(delivery: Delivery): PublicDelivery {
  return create(PublicDeliverySchema, {
    deliveryId: delivery.deliveryId,
    pickup: locationFromInternal(delivery.pickup),
    dropoff: locationFromInternal(delivery.dropoff),
    pickupTime: delivery.pickupTime,
    deadline: delivery.deadline,
    priority: priorityFromExpedited(delivery.expedited),
    confirmationRequired: confirmationTypeFromInternal(delivery.confirmationRequired),
    parcels: parcelsFromInternal(delivery.packages),
    carrier: carrierOf(delivery),
    stage: stageFromInternal(delivery.stage),
    endReason: delivery.endReason,
    failureCode: failureCodeFromInternal(delivery.failureCode),
    confirmation: confirmationFromInternal(delivery.confirmation),
    createTime: delivery.createTime,
    updateTime: delivery.updateTime,
  });
}

/** A status read at `now`: the time remaining is counted from then. */
export function statusFromInternal(status: DeliveryStatus, now: Date): PublicDeliveryStatus {
  return create(PublicDeliveryStatusSchema, {
    deliveryId: status.deliveryId,
    stage: stageFromInternal(status.stage),
    lastKnownLocation: locationFromInternal(status.lastKnownLocation),
    eta: etaOf({ pickup: status.pickupEta, dropoff: status.deliveryEta }, now),
    updateTime: status.updateTime,
    endReason: status.endReason,
    failureCode: failureCodeFromInternal(status.failureCode),
  });
}

/** A change of stage: the time remaining is counted from when it happened. */
export function eventFromInternal(event: DeliveryStatusEvent): PublicDeliveryEvent {
  return create(PublicDeliveryEventSchema, {
    deliveryId: event.deliveryId,
    stage: stageFromInternal(event.stage),
    location: locationFromInternal(event.location),
    eta: etaOf({ pickup: event.pickupEta, dropoff: event.deliveryEta }, dateOf(event.eventTime)),
    reason: event.reason,
    failureCode: failureCodeFromInternal(event.failureCode),
    eventTime: event.eventTime,
  });
}

/** A live position: the time remaining is counted from when it was measured. */
export function positionFromInternal(position: PositionUpdate): PublicPositionUpdate | undefined {
  const location = locationFromInternal(position.location);
  return (
    location &&
    create(PublicPositionUpdateSchema, {
      location,
      eta: etaOf({ dropoff: position.deliveryEta }, dateOf(position.eventTime)),
      eventTime: position.eventTime,
    })
  );
}

/** One update of the internal watch stream as the public one; undefined for an empty update. */
export function watchUpdateFromInternal(
  update: WatchDeliveryResponse,
): MessageInitShape<typeof PublicWatchResponseSchema> | undefined {
  switch (update.update.case) {
    case "statusEvent":
      return { sequence: update.sequence, update: { case: "event", value: eventFromInternal(update.update.value) } };
    case "position": {
      const position = positionFromInternal(update.update.value);
      return position && { sequence: update.sequence, update: { case: "position", value: position } };
    }
    default:
      return undefined;
  }
}
