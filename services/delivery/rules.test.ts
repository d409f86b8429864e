// The pure rules: drone progress to delivery stages, ETAs, status event ids, history merging;
// and what the telemetry handler drops before looking anything up.
import { create, toBinary } from "@bufbuild/protobuf";
import { headers, type JsMsg } from "nats";
import pino from "pino";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStatusEventSchema } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { ScheduleDeliveryRequestSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneLocationEventSchema, type DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { MESSAGE_TYPE_HEADER } from "../../lib/nats/messages.js";
import { ack } from "../../lib/nats/work-consumer.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { distanceMetres } from "./geo.js";
import { withEvent } from "./history.js";
import { enterStage, newDelivery, reschedule } from "./lifecycle.js";
import { LruMap } from "./lru.js";
import { applyProgress, deliveryStageFor, estimateArrivals, stagesTo } from "./progress.js";
import { statusEventAt, statusMessageId } from "./status.js";
import { TelemetryHandler } from "./telemetry.js";

const { UNSPECIFIED, CREATED, RESCHEDULED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED, CANCELLED } = DeliveryStage;
const PICKUP = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const DROPOFF = { latitude: 47.6205, longitude: -122.3493, altitude: 0 };
const MIDWAY = { latitude: 47.613, longitude: -122.34, altitude: 80 };
const T0 = new Date("2030-01-01T10:00:00Z");

function delivery(droneId = "drone-1"): Delivery {
  return newDelivery(
    create(ScheduleDeliveryRequestSchema, {
      deliveryId: "dlv-1",
      ownerId: "acct-1",
      pickup: PICKUP,
      dropoff: DROPOFF,
      deadline: timestampFromDate(new Date(T0.getTime() + 86_400_000)),
      confirmationRequired: ConfirmationType.NONE,
      packages: [{ packageId: "p-1", size: PackageSize.SMALL, weightKg: 1 }],
      carrier: { case: "droneId", value: droneId },
    }),
    T0,
  );
}

function event(stage: FlightStage, position = MIDWAY, init: { deliveryId?: string; speedMps?: number; sequence?: bigint } = {}): DroneLocationEvent {
  return create(DroneLocationEventSchema, {
    droneId: "drone-1",
    deliveryId: "dlv-1",
    position,
    stage,
    eventTime: timestampFromDate(T0),
    speedMps: 10,
    sequence: 1n,
    ...init,
  });
}

function progress(current: Delivery, e: DroneLocationEvent, writePosition = true): Delivery | typeof UNCHANGED {
  return applyProgress(current, { event: e, speedMps: e.speedMps || 15, writePosition }, new Date(T0.getTime() + 1_000));
}

describe("drone progress", () => {
  it("maps flight stages to delivery stages, forward only", () => {
    expect(deliveryStageFor(FlightStage.HEADED_TO_PICKUP, CREATED)).toBe(HEADED_TO_PICKUP);
    expect(deliveryStageFor(FlightStage.PICKING_UP, CREATED)).toBe(HEADED_TO_PICKUP);
    expect(deliveryStageFor(FlightStage.HEADED_TO_DROPOFF, HEADED_TO_PICKUP)).toBe(HEADED_TO_DROPOFF);
    expect(deliveryStageFor(FlightStage.DROPPING_OFF, HEADED_TO_DROPOFF)).toBe(COMPLETED);
    expect(deliveryStageFor(FlightStage.RETURNING, HEADED_TO_DROPOFF)).toBe(COMPLETED);
    expect(deliveryStageFor(FlightStage.IDLE, HEADED_TO_DROPOFF)).toBe(COMPLETED);
    // Before the pickup, a drone turning back says nothing of the parcels.
    expect(deliveryStageFor(FlightStage.RETURNING, HEADED_TO_PICKUP)).toBeUndefined();
    expect(deliveryStageFor(FlightStage.IDLE, CREATED)).toBeUndefined();
    expect(deliveryStageFor(FlightStage.UNSPECIFIED, CREATED)).toBeUndefined();

    expect(stagesTo(CREATED, COMPLETED)).toEqual([HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(stagesTo(RESCHEDULED, HEADED_TO_DROPOFF)).toEqual([HEADED_TO_PICKUP, HEADED_TO_DROPOFF]);
    expect(stagesTo(HEADED_TO_DROPOFF, HEADED_TO_PICKUP)).toEqual([]);
    expect(stagesTo(HEADED_TO_PICKUP, HEADED_TO_PICKUP)).toEqual([]);
    expect(stagesTo(CANCELLED, COMPLETED)).toEqual([]);
    expect(stagesTo(CREATED, undefined)).toEqual([]);
  });

  it("enters the stages with strictly increasing times, places the parcels and estimates arrivals", () => {
    const toDropoff = progress(delivery(), event(FlightStage.HEADED_TO_DROPOFF)) as Delivery;
    expect(toDropoff.history.map((h) => h.stage)).toEqual([CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF]);
    const times = toDropoff.history.map((h) => timestampMs(h.changeTime!));
    expect(times[2]! - times[1]!).toBe(1);
    expect(toDropoff.lastKnownLocation).toMatchObject(MIDWAY);
    expect(toDropoff.pickupEta).toBeUndefined();
    expect(timestampMs(toDropoff.deliveryEta!)).toBe(T0.getTime() + Math.round((distanceMetres(MIDWAY, DROPOFF) / 10) * 1000));

    const done = progress(toDropoff, event(FlightStage.DROPPING_OFF, DROPOFF, { sequence: 2n })) as Delivery;
    expect(done.stage).toBe(COMPLETED);
    expect(done.lastKnownLocation).toMatchObject(DROPOFF);
    expect(progress(done, event(FlightStage.HEADED_TO_DROPOFF))).toBe(UNCHANGED);
  });

  it("leaves the parcels at the pickup until they are picked up, and follows the ETAs", () => {
    const toPickup = progress(delivery(), event(FlightStage.HEADED_TO_PICKUP, MIDWAY)) as Delivery;
    expect(toPickup.stage).toBe(HEADED_TO_PICKUP);
    expect(toPickup.lastKnownLocation).toMatchObject(PICKUP);
    const toPickupMs = Math.round((distanceMetres(MIDWAY, PICKUP) / 10) * 1000);
    expect(timestampMs(toPickup.pickupEta!)).toBe(T0.getTime() + toPickupMs);
    expect(timestampMs(toPickup.deliveryEta!)).toBe(T0.getTime() + Math.round(((distanceMetres(MIDWAY, PICKUP) + distanceMetres(PICKUP, DROPOFF)) / 10) * 1000));
    const loading = estimateArrivals(toPickup, event(FlightStage.PICKING_UP, PICKUP, { speedMps: 0 }), 15, T0);
    expect(timestampMs(loading.pickupEta!)).toBe(T0.getTime());

    // Same stage: written only when the position may be written, and only when something changed.
    expect(progress(toPickup, event(FlightStage.HEADED_TO_PICKUP, PICKUP), false)).toBe(UNCHANGED);
    const moved = progress(toPickup, event(FlightStage.HEADED_TO_PICKUP, PICKUP)) as Delivery;
    expect(moved.stage).toBe(HEADED_TO_PICKUP);
    expect(moved.history).toHaveLength(2);
    expect(timestampMs(moved.pickupEta!)).toBe(T0.getTime());
    expect(progress(moved, event(FlightStage.HEADED_TO_PICKUP, PICKUP))).toBe(UNCHANGED);
  });

  it("ignores another drone, another delivery, and ended deliveries", () => {
    expect(progress(delivery("drone-2"), event(FlightStage.HEADED_TO_DROPOFF))).toBe(UNCHANGED);
    expect(progress(delivery(), event(FlightStage.HEADED_TO_DROPOFF, MIDWAY, { deliveryId: "dlv-2" }))).toBe(UNCHANGED);
    const cancelled = enterStage(delivery(), CANCELLED, T0, "no");
    expect(progress(cancelled, event(FlightStage.DROPPING_OFF, DROPOFF))).toBe(UNCHANGED);
  });
});

describe("status events", () => {
  it("names each stage entry once, numbering the reschedules", () => {
    let d = delivery();
    for (const h of [30, 31]) {
      const next = reschedule(d, { deadline: { value: timestampFromDate(new Date(T0.getTime() + h * 3_600_000)) } }, T0);
      if (next === UNCHANGED) throw new Error("unchanged");
      d = next;
    }
    d = enterStage(d, CANCELLED, T0, "bye");
    expect(d.history.map((_, i) => statusMessageId(d, i))).toEqual([
      "dlv-1:CREATED",
      "dlv-1:RESCHEDULED:1",
      "dlv-1:RESCHEDULED:2",
      "dlv-1:CANCELLED",
    ]);
    const times = d.history.map((h) => timestampMs(h.changeTime!));
    expect(new Set(times).size).toBe(times.length);
    expect(statusEventAt(d, 3)).toMatchObject({ stage: CANCELLED, previousStage: RESCHEDULED, reason: "bye", droneId: "drone-1" });
    expect(statusEventAt(d, 0)).toMatchObject({ stage: CREATED, previousStage: UNSPECIFIED });
  });

  it("merges events into a history once each, in the order of the stage changes", () => {
    const at = (ms: number) => timestampFromDate(new Date(T0.getTime() + ms));
    const created = create(DeliveryStatusEventSchema, { deliveryId: "dlv-1", stage: CREATED, eventTime: at(0) });
    const first = create(DeliveryStatusEventSchema, { deliveryId: "dlv-1", stage: RESCHEDULED, eventTime: at(5) });
    const second = create(DeliveryStatusEventSchema, { deliveryId: "dlv-1", stage: RESCHEDULED, eventTime: at(9) });
    const cancelled = create(DeliveryStatusEventSchema, { deliveryId: "dlv-1", stage: CANCELLED, eventTime: at(12) });
    let history = withEvent(undefined, created);
    for (const e of [cancelled, second, first, created, second, cancelled]) {
      const next = withEvent(history === UNCHANGED ? undefined : history, e);
      if (next !== UNCHANGED) history = next;
    }
    if (history === UNCHANGED) throw new Error("unchanged");
    expect(history.events).toEqual([created, first, second, cancelled]);
  });
});

describe("the telemetry handler", () => {
  it("acks undecodable events and events without a valid delivery id without reading anything", async () => {
    const handler = new TelemetryHandler(undefined as never, { locationWriteIntervalMs: 0, defaultSpeedMps: 15, telemetryCacheSize: 10 }, pino({ level: "silent" }));
    const typed = (message: DroneLocationEvent) => {
      const h = headers();
      h.set(MESSAGE_TYPE_HEADER, DroneLocationEventSchema.typeName);
      return { subject: "drone.drone-1.location", data: toBinary(DroneLocationEventSchema, message), headers: h } as unknown as JsMsg;
    };
    const junk = { subject: "drone.drone-1.location", data: new Uint8Array([1, 2, 3]), headers: headers() } as unknown as JsMsg;
    expect(await handler.handle(junk)).toEqual(ack);
    expect(await handler.handle(typed(event(FlightStage.RETURNING, MIDWAY, { deliveryId: "" })))).toEqual(ack);
    expect(await handler.handle(typed(event(FlightStage.HEADED_TO_PICKUP, MIDWAY, { deliveryId: "not a delivery id" })))).toEqual(ack);
  });
});

describe("LruMap", () => {
  it("forgets the least recently used entry first", () => {
    const map = new LruMap<string, number>(2);
    map.set("a", 1);
    map.set("b", 2);
    expect(map.get("a")).toBe(1);
    map.set("c", 3);
    expect([map.get("a"), map.get("b"), map.get("c"), map.size]).toEqual([1, undefined, 3, 2]);
  });
});
