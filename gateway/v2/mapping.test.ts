import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  ConfirmationType as PublicConfirmationType,
  DeliveryStage as PublicDeliveryStage,
  ParcelSchema,
  ParcelSize,
  ParcelSizeSchema,
  Priority,
} from "../../gen/dronedelivery/api/v2/resources_pb.js";
import { ConfirmationType, PackageSize, PackageSizeSchema } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliverySchema, DeliveryStage, DeliveryStatusSchema } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { WatchDeliveryResponseSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { enumByName, reschedulePaths } from "../shared-mapping.js";
import {
  confirmationTypeToInternal,
  deliveryFromInternal,
  etaOf,
  eventFromInternal,
  parcelsFromInternal,
  parcelsToInternal,
  positionFromInternal,
  priorityFromExpedited,
  priorityToExpedited,
  schedulePathToPublic,
  statusFromInternal,
  watchUpdateFromInternal,
} from "./mapping.js";

const at = (iso: string) => timestampFromDate(new Date(iso));

describe("shared mapping", () => {
  it("matches enum values by name without each enum's prefix, passing unknown numbers through", () => {
    expect(enumByName(ParcelSize.MEDIUM, ParcelSizeSchema, PackageSizeSchema)).toBe(PackageSize.MEDIUM);
    expect(enumByName(PackageSize.LARGE, PackageSizeSchema, ParcelSizeSchema)).toBe(ParcelSize.LARGE);
    expect(enumByName(42, ParcelSizeSchema, PackageSizeSchema)).toBe(42);
  });

  it("changes the masked fields, or every one present when the mask is empty", () => {
    expect(reschedulePaths({ updateMask: { paths: ["deadline"] }, dropoff: {} })).toEqual(["deadline"]);
    expect(reschedulePaths({ dropoff: {}, deadline: at("2030-01-01T00:00:00Z") })).toEqual(["dropoff", "deadline"]);
    expect(reschedulePaths({ updateMask: { paths: [] } })).toEqual([]);
  });
});

describe("v2 mapping", () => {
  it("maps enums by value name and priority to the expedited flag", () => {
    expect(confirmationTypeToInternal(PublicConfirmationType.PIN)).toBe(ConfirmationType.PIN);
    expect(confirmationTypeToInternal(99 as PublicConfirmationType)).toBe(99);
    expect(priorityToExpedited(Priority.EXPEDITED)).toBe(true);
    expect(priorityToExpedited(Priority.STANDARD)).toBe(false);
    expect(priorityToExpedited(Priority.UNSPECIFIED)).toBe(false);
    expect(priorityFromExpedited(true)).toBe(Priority.EXPEDITED);
    expect(priorityFromExpedited(false)).toBe(Priority.STANDARD);
  });

  it("maps every parcel to the packages list and back, in order", () => {
    const parcels = [
      create(ParcelSchema, { parcelId: "p-1", size: ParcelSize.LARGE, weightKg: 3, tag: "t" }),
      create(ParcelSchema, { parcelId: "p-2", size: ParcelSize.SMALL, weightKg: 0.5 }),
    ];
    const packages = parcelsToInternal(parcels);
    expect(packages).toEqual([
      { packageId: "p-1", size: PackageSize.LARGE, weightKg: 3, tag: "t" },
      { packageId: "p-2", size: PackageSize.SMALL, weightKg: 0.5, tag: "" },
    ]);
    expect(parcelsToInternal([])).toEqual([]);
    const back = parcelsFromInternal(create(DeliverySchema, { packages }).packages);
    expect(back).toEqual(parcels);
  });

  it("renames internal schedule field paths to the public ones", () => {
    expect(schedulePathToPublic("packages")).toBe("parcels");
    expect(schedulePathToPublic("packages[1].package_id")).toBe("parcels[1].parcel_id");
    expect(schedulePathToPublic("packages[0].weight_kg")).toBe("parcels[0].weight_kg");
    expect(schedulePathToPublic("pickup.latitude")).toBe("pickup.latitude");
  });

  it("shows the carrier as a oneof, the parcels, priority and the confirmation", () => {
    const confirmTime = at("2026-01-02T03:04:05Z");
    const thirdParty = create(DeliverySchema, {
      deliveryId: "d-1",
      ownerId: "acct-demo",
      stage: DeliveryStage.COMPLETED,
      expedited: true,
      confirmationRequired: ConfirmationType.SIGNATURE,
      packages: [{ packageId: "p-1", size: PackageSize.SMALL, weightKg: 1 }, { packageId: "p-2", size: PackageSize.MEDIUM, weightKg: 2 }],
      carrier: { case: "thirdParty", value: { carrier: "acme-couriers", trackingId: "TRK-9" } },
      confirmation: { type: ConfirmationType.SIGNATURE, confirmTime, proofReference: "sig-1" },
    });
    const view = deliveryFromInternal(thirdParty);
    expect(view).toMatchObject({
      deliveryId: "d-1",
      priority: Priority.EXPEDITED,
      carrier: { case: "thirdParty", value: { name: "acme-couriers", trackingId: "TRK-9" } },
      stage: PublicDeliveryStage.COMPLETED,
      confirmationRequired: PublicConfirmationType.SIGNATURE,
      parcels: [
        { parcelId: "p-1", size: ParcelSize.SMALL, weightKg: 1 },
        { parcelId: "p-2", size: ParcelSize.MEDIUM, weightKg: 2 },
      ],
      confirmation: { type: PublicConfirmationType.SIGNATURE, confirmTime, proofReference: "sig-1" },
    });
    expect(view).not.toHaveProperty("ownerId");

    const drone = deliveryFromInternal(create(DeliverySchema, { deliveryId: "d-2", carrier: { case: "droneId", value: "drone-7" } }));
    expect(drone.carrier.case).toBe("drone");
    expect(drone.priority).toBe(Priority.STANDARD);
    expect(drone.confirmation).toBeUndefined();
    expect(JSON.stringify(drone)).not.toContain("drone-7");

    const unscheduled = deliveryFromInternal(create(DeliverySchema, { deliveryId: "d-3" }));
    expect(unscheduled.carrier.case).toBeUndefined();
  });

  it("types the ETAs, with the time remaining until drop-off never negative", () => {
    const now = new Date("2026-01-01T12:00:00Z");
    const eta = etaOf({ pickup: at("2026-01-01T12:05:00Z"), dropoff: at("2026-01-01T12:20:00Z") }, now);
    expect(eta?.pickupTime).toEqual(at("2026-01-01T12:05:00Z"));
    expect(eta?.dropoffTime).toEqual(at("2026-01-01T12:20:00Z"));
    expect(eta?.remaining && durationMs(eta.remaining)).toBe(20 * 60_000);
    const late = etaOf({ dropoff: at("2026-01-01T11:59:00Z") }, now);
    expect(late?.remaining && durationMs(late.remaining)).toBe(0);
    expect(etaOf({ pickup: at("2026-01-01T12:05:00Z") }, now)?.remaining).toBeUndefined();
    expect(etaOf({}, now)).toBeUndefined();

    const status = statusFromInternal(
      create(DeliveryStatusSchema, {
        deliveryId: "d-1",
        stage: DeliveryStage.HEADED_TO_DROPOFF,
        lastKnownLocation: { latitude: 1, longitude: 2 },
        deliveryEta: at("2026-01-01T12:01:30Z"),
      }),
      now,
    );
    expect(status).toMatchObject({ deliveryId: "d-1", stage: PublicDeliveryStage.HEADED_TO_DROPOFF, lastKnownLocation: { latitude: 1, longitude: 2 } });
    expect(status.eta?.pickupTime).toBeUndefined();
    expect(status.eta?.remaining && durationMs(status.eta.remaining)).toBe(90_000);

    const ended = statusFromInternal(create(DeliveryStatusSchema, { deliveryId: "d-1", stage: DeliveryStage.COMPLETED }), now);
    expect(ended.eta).toBeUndefined();
  });

  it("counts an event's time remaining from when it happened", () => {
    const event = eventFromInternal(
      create(DeliveryStatusEventSchema, {
        deliveryId: "d-1",
        ownerId: "acct-demo",
        stage: DeliveryStage.HEADED_TO_PICKUP,
        pickupEta: at("2026-01-01T12:02:00Z"),
        deliveryEta: at("2026-01-01T12:10:00Z"),
        eventTime: at("2026-01-01T12:00:00Z"),
      }),
    );
    expect(event).toMatchObject({ deliveryId: "d-1", stage: PublicDeliveryStage.HEADED_TO_PICKUP });
    expect(event.eta?.pickupTime).toEqual(at("2026-01-01T12:02:00Z"));
    expect(event.eta?.remaining && durationMs(event.eta.remaining)).toBe(10 * 60_000);
    expect(event).not.toHaveProperty("ownerId");
  });

  it("maps watch updates and drops empty ones", () => {
    const position = create(WatchDeliveryResponseSchema, {
      sequence: 7n,
      update: {
        case: "position",
        value: { location: { latitude: 1, longitude: 2 }, eventTime: at("2026-01-01T12:00:00Z"), deliveryEta: at("2026-01-01T12:00:30Z") },
      },
    });
    expect(watchUpdateFromInternal(position)).toMatchObject({
      sequence: 7n,
      update: { case: "position", value: { location: { latitude: 1, longitude: 2 }, eventTime: at("2026-01-01T12:00:00Z") } },
    });
    const moved = position.update.case === "position" ? positionFromInternal(position.update.value) : undefined;
    expect(moved?.eta?.pickupTime).toBeUndefined();
    expect(moved?.eta?.remaining && durationMs(moved.eta.remaining)).toBe(30_000);

    const event = create(WatchDeliveryResponseSchema, {
      sequence: 8n,
      update: { case: "statusEvent", value: { deliveryId: "d-1", ownerId: "acct-demo", stage: DeliveryStage.HEADED_TO_PICKUP } },
    });
    expect(watchUpdateFromInternal(event)).toMatchObject({
      sequence: 8n,
      update: { case: "event", value: { deliveryId: "d-1", stage: PublicDeliveryStage.HEADED_TO_PICKUP } },
    });
    expect(watchUpdateFromInternal(create(WatchDeliveryResponseSchema, { sequence: 9n }))).toBeUndefined();
    const noLocation = create(WatchDeliveryResponseSchema, { sequence: 10n, update: { case: "position", value: {} } });
    expect(watchUpdateFromInternal(noLocation)).toBeUndefined();
  });
});
