// ETAs of a delivery from its drone's location events: the drone's own ETAs (from its flight plan,
// in the clock the flight is flown in) when the event carries them, else estimated from distance.
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliverySchema, DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { ScheduleDeliveryRequestSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneLocationEventSchema, type DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { distanceMetres } from "./geo.js";
import { newDelivery } from "./lifecycle.js";
import { applyProgress, estimateArrivals } from "./progress.js";

const PICKUP = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const DROPOFF = { latitude: 47.6205, longitude: -122.3493, altitude: 0 };
const MIDWAY = { latitude: 47.613, longitude: -122.34, altitude: 60 };
const T0 = new Date("2030-01-01T10:00:00Z");
const ms = (offset: number) => timestampFromMs(T0.getTime() + offset);

function delivery(): Delivery {
  return newDelivery(
    create(ScheduleDeliveryRequestSchema, {
      deliveryId: "dlv-1",
      ownerId: "acct-1",
      pickup: PICKUP,
      dropoff: DROPOFF,
      deadline: timestampFromDate(new Date(T0.getTime() + 86_400_000)),
      confirmationRequired: ConfirmationType.NONE,
      packages: [{ packageId: "p-1", size: PackageSize.SMALL, weightKg: 1 }],
      carrier: { case: "droneId", value: "drone-1" },
    }),
    T0,
  );
}

function event(stage: FlightStage, position: typeof PICKUP, etas: { pickupEta?: number; dropoffEta?: number } = {}): DroneLocationEvent {
  return create(DroneLocationEventSchema, {
    droneId: "drone-1",
    deliveryId: "dlv-1",
    position,
    stage,
    eventTime: timestampFromDate(T0),
    speedMps: 15,
    sequence: 1n,
    ...(etas.pickupEta === undefined ? {} : { pickupEta: ms(etas.pickupEta) }),
    ...(etas.dropoffEta === undefined ? {} : { dropoffEta: ms(etas.dropoffEta) }),
  });
}

const at = (t: Timestamp | undefined) => (t ? timestampMs(t) - T0.getTime() : undefined);

describe("ETAs from the drone's flight plan", () => {
  it("takes the drone's own ETAs when the event carries them, whatever the speed says", () => {
    // A drone flown 60 times faster than real time: its plan says 4 s and 10 s; the speed says minutes.
    const toPickup = estimateArrivals(delivery(), event(FlightStage.HEADED_TO_PICKUP, MIDWAY, { pickupEta: 4_000, dropoffEta: 10_000 }), 15, T0);
    expect(at(toPickup.pickupEta)).toBe(4_000);
    expect(at(toPickup.deliveryEta)).toBe(10_000);
    const loading = estimateArrivals(delivery(), event(FlightStage.PICKING_UP, PICKUP, { pickupEta: -500, dropoffEta: 7_000 }), 15, T0);
    expect(at(loading.pickupEta)).toBe(-500);
    expect(at(loading.deliveryEta)).toBe(7_000);
    const carrying = estimateArrivals(delivery(), event(FlightStage.HEADED_TO_DROPOFF, MIDWAY, { dropoffEta: 3_000 }), 15, T0);
    expect(carrying).toEqual({ deliveryEta: ms(3_000) });
    const dropping = estimateArrivals(delivery(), event(FlightStage.DROPPING_OFF, DROPOFF, { dropoffEta: 0 }), 15, T0);
    expect(dropping).toEqual({ deliveryEta: ms(0) });
    // Nothing ahead once the parcels are released, ETAs or not.
    expect(estimateArrivals(delivery(), event(FlightStage.RETURNING, MIDWAY, { dropoffEta: 0 }), 15, T0)).toEqual({});
  });

  it("falls back to distance over speed for an ETA the event does not carry", () => {
    const toPickupMs = Math.round((distanceMetres(MIDWAY, PICKUP) / 15) * 1000);
    const onlyDropoff = estimateArrivals(delivery(), event(FlightStage.HEADED_TO_PICKUP, MIDWAY, { dropoffEta: 9_000 }), 15, T0);
    expect(at(onlyDropoff.pickupEta)).toBe(toPickupMs);
    expect(at(onlyDropoff.deliveryEta)).toBe(9_000);
    const none = estimateArrivals(delivery(), event(FlightStage.HEADED_TO_DROPOFF, MIDWAY), 15, T0);
    expect(at(none.deliveryEta)).toBe(Math.round((distanceMetres(MIDWAY, DROPOFF) / 15) * 1000));
  });

  it("stores the drone's ETAs in the delivery record", () => {
    const e = event(FlightStage.HEADED_TO_PICKUP, MIDWAY, { pickupEta: 4_000, dropoffEta: 10_000 });
    const next = applyProgress(delivery(), { event: e, speedMps: 15, writePosition: true }, new Date(T0.getTime() + 1)) as Delivery;
    expect(next.stage).toBe(DeliveryStage.HEADED_TO_PICKUP);
    expect(at(next.pickupEta)).toBe(4_000);
    expect(at(next.deliveryEta)).toBe(10_000);
    const carrying = event(FlightStage.HEADED_TO_DROPOFF, MIDWAY, { dropoffEta: 6_000 });
    const later = applyProgress(next, { event: carrying, speedMps: 15, writePosition: true }, new Date(T0.getTime() + 2)) as Delivery;
    expect(later.stage).toBe(DeliveryStage.HEADED_TO_DROPOFF);
    expect(at(later.deliveryEta)).toBe(6_000);
  });
});

describe("events handled out of order (two instances share the telemetry consumer)", () => {
  const timed = (stage: FlightStage, position: typeof PICKUP, offsetMs: number, etas: { dropoffEta?: number } = {}) => {
    const e = event(stage, position, etas);
    e.eventTime = ms(offsetMs);
    return e;
  };
  const NEAR_DROPOFF = { latitude: 47.619, longitude: -122.348, altitude: 60 };

  it("keeps the position and ETAs of the newest event measured, and still enters the stages an older one reports", () => {
    const picking = applyProgress(delivery(), { event: timed(FlightStage.HEADED_TO_PICKUP, PICKUP, 0), speedMps: 15, writePosition: true }, T0) as Delivery;
    const newer = timed(FlightStage.HEADED_TO_DROPOFF, NEAR_DROPOFF, 5_000, { dropoffEta: 6_000 });
    const carried = applyProgress(picking, { event: newer, speedMps: 15, writePosition: true }, new Date(T0.getTime() + 5_001)) as Delivery;
    expect(carried.lastKnownLocation).toMatchObject(NEAR_DROPOFF);
    expect(at(carried.locationTime)).toBe(5_000);

    // An older event of the same stage, reaching the store last: nothing to write.
    const older = timed(FlightStage.HEADED_TO_DROPOFF, MIDWAY, 3_000, { dropoffEta: 9_000 });
    expect(applyProgress(carried, { event: older, speedMps: 15, writePosition: true }, new Date(T0.getTime() + 5_002))).toBe(UNCHANGED);

    // An older event that reports a stage the record has not entered yet: the stage is entered,
    // the newer position and ETAs stay.
    const olderStage = timed(FlightStage.HEADED_TO_DROPOFF, MIDWAY, 3_000, { dropoffEta: 9_000 });
    const entered = applyProgress(picking, { event: olderStage, speedMps: 15, writePosition: true }, new Date(T0.getTime() + 3_001)) as Delivery;
    expect(entered.stage).toBe(DeliveryStage.HEADED_TO_DROPOFF);
    // The record as another instance left it: still before the pickup, with a newer event's position and ETA.
    const racing = clone(DeliverySchema, picking);
    racing.locationTime = ms(5_000);
    racing.lastKnownLocation = carried.lastKnownLocation;
    racing.deliveryEta = ms(6_000);
    const afterRace = applyProgress(racing, { event: olderStage, speedMps: 15, writePosition: true }, new Date(T0.getTime() + 5_003)) as Delivery;
    expect(afterRace.stage).toBe(DeliveryStage.HEADED_TO_DROPOFF);
    expect(afterRace.lastKnownLocation).toMatchObject(NEAR_DROPOFF);
    expect(at(afterRace.deliveryEta)).toBe(6_000);
    expect(at(afterRace.locationTime)).toBe(5_000);
  });
});
