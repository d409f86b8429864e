import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  ConfirmationType as PublicConfirmationType,
  DeliveryStage as PublicDeliveryStage,
  PackageSize as PublicPackageSize,
} from "../../gen/dronedelivery/api/v1/resources_pb.js";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliverySchema, DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { WatchDeliveryResponseSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import {
  confirmationTypeToInternal,
  deliveryFromInternal,
  packagesToInternal,
  schedulePathToPublic,
  watchUpdateFromInternal,
} from "./mapping.js";

describe("v1 mapping", () => {
  it("maps enums by value name and passes unknown numbers through", () => {
    expect(confirmationTypeToInternal(PublicConfirmationType.PIN)).toBe(ConfirmationType.PIN);
    expect(confirmationTypeToInternal(99 as PublicConfirmationType)).toBe(99);
  });

  it("maps the single public parcel to the packages list", () => {
    expect(packagesToInternal(undefined)).toEqual([]);
    expect(
      packagesToInternal({ $typeName: "dronedelivery.api.v1.PackageInfo", packageId: "p-1", size: PublicPackageSize.LARGE, weightKg: 3, tag: "t" }),
    ).toEqual([{ packageId: "p-1", size: PackageSize.LARGE, weightKg: 3, tag: "t" }]);
  });

  it("renames internal schedule field paths to the public ones", () => {
    expect(schedulePathToPublic("packages")).toBe("package_info");
    expect(schedulePathToPublic("packages[0].weight_kg")).toBe("package_info.weight_kg");
    expect(schedulePathToPublic("pickup.latitude")).toBe("pickup.latitude");
  });

  it("shows the carrier, tracking id and confirmation time of a delivery", () => {
    const confirmTime = timestampFromDate(new Date("2026-01-02T03:04:05Z"));
    const thirdParty = create(DeliverySchema, {
      deliveryId: "d-1",
      ownerId: "acct-demo",
      stage: DeliveryStage.COMPLETED,
      confirmationRequired: ConfirmationType.SIGNATURE,
      packages: [{ packageId: "p-1", size: PackageSize.SMALL, weightKg: 1 }, { packageId: "p-2", size: PackageSize.SMALL, weightKg: 1 }],
      carrier: { case: "thirdParty", value: { carrier: "acme-couriers", trackingId: "TRK-9" } },
      confirmation: { type: ConfirmationType.SIGNATURE, confirmTime },
    });
    const view = deliveryFromInternal(thirdParty);
    expect(view).toMatchObject({
      deliveryId: "d-1",
      carrier: "acme-couriers",
      trackingId: "TRK-9",
      stage: PublicDeliveryStage.COMPLETED,
      confirmationRequired: PublicConfirmationType.SIGNATURE,
      packageInfo: { packageId: "p-1", size: PublicPackageSize.SMALL },
      confirmTime,
    });
    expect(view).not.toHaveProperty("ownerId");

    const drone = deliveryFromInternal(create(DeliverySchema, { deliveryId: "d-2", carrier: { case: "droneId", value: "drone-7" } }));
    expect(drone.carrier).toBe("drone");
    expect(drone.trackingId).toBe("");
    expect(drone.confirmTime).toBeUndefined();
  });

  it("maps watch updates and drops empty ones", () => {
    const position = create(WatchDeliveryResponseSchema, {
      sequence: 7n,
      update: { case: "position", value: { location: { latitude: 1, longitude: 2 } } },
    });
    expect(watchUpdateFromInternal(position)).toMatchObject({ sequence: 7n, update: { case: "position", value: { latitude: 1, longitude: 2 } } });
    const event = create(WatchDeliveryResponseSchema, {
      sequence: 8n,
      update: { case: "statusEvent", value: { deliveryId: "d-1", ownerId: "acct-demo", stage: DeliveryStage.HEADED_TO_PICKUP } },
    });
    expect(watchUpdateFromInternal(event)).toMatchObject({
      sequence: 8n,
      update: { case: "event", value: { deliveryId: "d-1", stage: PublicDeliveryStage.HEADED_TO_PICKUP } },
    });
    expect(watchUpdateFromInternal(create(WatchDeliveryResponseSchema, { sequence: 9n }))).toBeUndefined();
  });
});
