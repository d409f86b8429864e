// Delivery stages from drone telemetry, and the status events published for every stage entered.
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { distanceMetres } from "./geo.js";
import { DeliveryTestBed, DROPOFF, EVENTUALLY, FlightStage, inHours, PICKUP, scheduleRequest } from "./test-support.js";

const HOME = { latitude: 47.59, longitude: -122.31, altitude: 0 };
const NEAR_PICKUP = { latitude: 47.6, longitude: -122.325, altitude: 60 };
const MIDWAY = { latitude: 47.613, longitude: -122.34, altitude: 80 };
const NEAR_DROPOFF = { latitude: 47.619, longitude: -122.348, altitude: 40 };

const { CREATED, RESCHEDULED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED, CANCELLED, FAILED } = DeliveryStage;

let bed: DeliveryTestBed;

beforeAll(async () => {
  // Every position is written at once, so the tests can look at each.
  bed = await DeliveryTestBed.start({ DELIVERY_LOCATION_WRITE_INTERVAL_MS: "0", DELIVERY_TELEMETRY_ACK_WAIT_MS: "3000" });
});

afterAll(async () => {
  await bed?.stop();
});

describe("delivery status from drone telemetry", () => {
  it("moves Created -> HeadedToPickup -> HeadedToDropoff -> Completed and publishes each stage once, in order", async () => {
    const created = await bed.schedule("dlv-flight", "drone-flight");
    expect(created.stage).toBe(CREATED);

    await bed.fly("drone-flight", "dlv-flight", FlightStage.HEADED_TO_PICKUP, 1, HOME, 10);
    await bed.reaches("dlv-flight", HEADED_TO_PICKUP);
    await bed.fly("drone-flight", "dlv-flight", FlightStage.HEADED_TO_PICKUP, 2, NEAR_PICKUP, 10);
    await bed.telemetryHandled();
    const { status: toPickup } = await bed.client.getDeliveryStatus({ deliveryId: "dlv-flight" });
    // The parcels wait at the pickup; the ETAs follow the drone.
    expect(toPickup?.lastKnownLocation).toMatchObject(PICKUP);
    const now = Date.now();
    const pickupEta = timestampMs(toPickup!.pickupEta!);
    const deliveryEta = timestampMs(toPickup!.deliveryEta!);
    const toPickupSeconds = distanceMetres(NEAR_PICKUP, PICKUP) / 10;
    const onwardSeconds = distanceMetres(PICKUP, DROPOFF) / 10;
    expect(pickupEta).toBeGreaterThan(now + (toPickupSeconds - 60) * 1000);
    expect(pickupEta).toBeLessThan(now + (toPickupSeconds + 60) * 1000);
    expect(deliveryEta - pickupEta).toBeCloseTo(onwardSeconds * 1000, -1);

    await bed.fly("drone-flight", "dlv-flight", FlightStage.PICKING_UP, 3, PICKUP, 0);
    await bed.fly("drone-flight", "dlv-flight", FlightStage.HEADED_TO_DROPOFF, 4, MIDWAY, 10);
    await bed.reaches("dlv-flight", HEADED_TO_DROPOFF);
    await bed.telemetryHandled();
    const { status: carried } = await bed.client.getDeliveryStatus({ deliveryId: "dlv-flight" });
    expect(carried?.lastKnownLocation).toMatchObject(MIDWAY);
    expect(carried?.pickupEta).toBeUndefined();
    const remaining = timestampMs(carried!.deliveryEta!) - Date.now();
    expect(remaining).toBeGreaterThan((distanceMetres(MIDWAY, DROPOFF) / 10 - 60) * 1000);
    expect(remaining).toBeLessThan((distanceMetres(MIDWAY, DROPOFF) / 10 + 60) * 1000);

    await bed.fly("drone-flight", "dlv-flight", FlightStage.HEADED_TO_DROPOFF, 5, NEAR_DROPOFF, 10);
    await bed.fly("drone-flight", "dlv-flight", FlightStage.DROPPING_OFF, 6, DROPOFF, 0);
    await bed.fly("drone-flight", "dlv-flight", FlightStage.RETURNING, 7, DROPOFF, 10);
    await bed.fly("drone-flight", "", FlightStage.RETURNING, 8, HOME, 10);
    const done = await bed.reaches("dlv-flight", COMPLETED);
    expect(done.history.map((h) => h.stage)).toEqual([CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    const { status: final } = await bed.client.getDeliveryStatus({ deliveryId: "dlv-flight" });
    expect(final).toMatchObject({ stage: COMPLETED });
    expect(final?.lastKnownLocation).toMatchObject(DROPOFF);

    const messages = await bed.published("dlv-flight", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(messages.map((m) => m.msgId)).toEqual([
      "dlv-flight:CREATED",
      "dlv-flight:HEADED_TO_PICKUP",
      "dlv-flight:HEADED_TO_DROPOFF",
      "dlv-flight:COMPLETED",
    ]);
    expect(messages.map((m) => m.event.previousStage)).toEqual([DeliveryStage.UNSPECIFIED, CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF]);
    expect(messages.map((m) => m.event.eventTime)).toEqual(done.history.map((h) => h.changeTime));
    for (const m of messages) expect(m.event).toMatchObject({ deliveryId: "dlv-flight", ownerId: "acct-demo", droneId: "drone-flight" });
    expect(messages[2]?.event.location).toMatchObject(MIDWAY);
    expect(messages[3]?.event.location).toMatchObject(DROPOFF);
    expect(messages[3]?.event.deliveryEta).toBeUndefined();

    // The history subscriber has the same events, oldest first.
    await vi.waitFor(async () => {
      const { events } = await bed.client.getDeliveryHistory({ deliveryId: "dlv-flight" });
      expect(events).toEqual(messages.map((m) => m.event));
    }, EVENTUALLY);
  });

  it("publishes no stage twice for repeated, replayed and out-of-order events, and keeps the newest position", async () => {
    await bed.schedule("dlv-dup", "drone-dup");
    await bed.schedule("dlv-dup-next", "drone-dup");
    for (let round = 0; round < 2; round++) {
      await bed.fly("drone-dup", "dlv-dup", FlightStage.HEADED_TO_PICKUP, 1, HOME);
      await bed.fly("drone-dup", "dlv-dup", FlightStage.HEADED_TO_PICKUP, 2, NEAR_PICKUP);
      await bed.fly("drone-dup", "dlv-dup", FlightStage.HEADED_TO_DROPOFF, 4, NEAR_DROPOFF);
    }
    // Older than the last one applied: neither its stage nor its position counts.
    await bed.fly("drone-dup", "dlv-dup", FlightStage.HEADED_TO_DROPOFF, 3, MIDWAY);
    await bed.fly("drone-dup", "dlv-dup", FlightStage.HEADED_TO_PICKUP, 1, HOME);
    await bed.telemetryHandled();
    const { status } = await bed.client.getDeliveryStatus({ deliveryId: "dlv-dup" });
    expect(status?.stage).toBe(HEADED_TO_DROPOFF);
    expect(status?.lastKnownLocation).toMatchObject(NEAR_DROPOFF);

    for (let round = 0; round < 3; round++) {
      await bed.fly("drone-dup", "dlv-dup", FlightStage.DROPPING_OFF, 5, DROPOFF);
      await bed.fly("drone-dup", "dlv-dup", FlightStage.HEADED_TO_DROPOFF, 4, NEAR_DROPOFF);
    }
    await bed.fly("drone-dup", "dlv-dup", FlightStage.RETURNING, 6, DROPOFF);
    // The drone's next delivery does not touch the completed one.
    await bed.fly("drone-dup", "dlv-dup-next", FlightStage.HEADED_TO_PICKUP, 7, HOME);
    await bed.reaches("dlv-dup-next", HEADED_TO_PICKUP);
    await bed.telemetryHandled();

    const delivery = await bed.reaches("dlv-dup", COMPLETED);
    expect(delivery.history.map((h) => h.stage)).toEqual([CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(delivery.lastKnownLocation).toMatchObject(DROPOFF);
    const messages = await bed.published("dlv-dup", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(new Set(messages.map((m) => m.msgId)).size).toBe(4);
  });

  it("enters every stage in between when it first hears of a delivery late in the flight", async () => {
    await bed.schedule("dlv-late", "drone-late");
    await bed.fly("drone-late", "dlv-late", FlightStage.DROPPING_OFF, 41, DROPOFF, 0);
    const delivery = await bed.reaches("dlv-late", COMPLETED);
    expect(delivery.history.map((h) => h.stage)).toEqual([CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    const times = delivery.history.map((h) => timestampMs(h.changeTime!));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
    await bed.published("dlv-late", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
  });

  it("completes exactly once across a restart of the service in the middle of the flight", async () => {
    await bed.schedule("dlv-restart", "drone-restart");
    await bed.fly("drone-restart", "dlv-restart", FlightStage.HEADED_TO_PICKUP, 1, HOME);
    await bed.reaches("dlv-restart", HEADED_TO_PICKUP);

    await bed.stopService();
    // While the service is down the drone flies on; its events wait in DRONE_TELEMETRY.
    await bed.fly("drone-restart", "dlv-restart", FlightStage.PICKING_UP, 2, PICKUP);
    await bed.fly("drone-restart", "dlv-restart", FlightStage.HEADED_TO_DROPOFF, 3, MIDWAY);
    await bed.fly("drone-restart", "dlv-restart", FlightStage.DROPPING_OFF, 4, DROPOFF);
    await bed.startService();
    await bed.reaches("dlv-restart", COMPLETED);

    // A replay of the whole flight (what a redelivery after a crash looks like) changes nothing.
    for (const [seq, stage] of [
      [1, FlightStage.HEADED_TO_PICKUP],
      [2, FlightStage.PICKING_UP],
      [3, FlightStage.HEADED_TO_DROPOFF],
      [4, FlightStage.DROPPING_OFF],
    ] as const) {
      await bed.fly("drone-restart", "dlv-restart", stage, seq, DROPOFF);
    }
    await bed.telemetryHandled();
    const messages = await bed.published("dlv-restart", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(messages.filter((m) => m.event.stage === COMPLETED)).toHaveLength(1);
  });

  it("ignores the events of another drone, of unknown deliveries and of ended deliveries", async () => {
    await bed.schedule("dlv-mine", "drone-mine");
    await bed.schedule("dlv-cancelled", "drone-cancelled");
    await bed.client.cancelDelivery({ deliveryId: "dlv-cancelled", reason: "not needed" });
    await bed.schedule("dlv-third", "drone-x", { carrier: { case: "thirdParty", value: { carrier: "Fabrikam", trackingId: "F-1" } } });

    await bed.fly("drone-other", "dlv-mine", FlightStage.HEADED_TO_DROPOFF, 1, MIDWAY);
    await bed.fly("drone-other", "dlv-mine", FlightStage.DROPPING_OFF, 2, DROPOFF);
    await bed.fly("drone-x", "dlv-third", FlightStage.DROPPING_OFF, 1, DROPOFF);
    await bed.fly("drone-cancelled", "dlv-cancelled", FlightStage.HEADED_TO_DROPOFF, 1, MIDWAY);
    await bed.fly("drone-ghost", "dlv-nobody-knows", FlightStage.HEADED_TO_PICKUP, 1, HOME);
    await bed.fly("drone-mine", "", FlightStage.IDLE, 1, HOME);
    await bed.telemetryHandled();

    expect((await bed.client.getDelivery({ deliveryId: "dlv-mine" })).delivery?.stage).toBe(CREATED);
    expect((await bed.client.getDelivery({ deliveryId: "dlv-third" })).delivery?.stage).toBe(CREATED);
    const cancelled = (await bed.client.getDelivery({ deliveryId: "dlv-cancelled" })).delivery;
    expect(cancelled?.stage).toBe(CANCELLED);
    expect(cancelled?.lastKnownLocation).toMatchObject(PICKUP);
    await bed.published("dlv-mine", [CREATED]);
    await bed.published("dlv-cancelled", [CREATED, CANCELLED]);
    expect(await bed.statusMessages("dlv-nobody-knows")).toEqual([]);
  });

  it("publishes Created, each Rescheduled under its own number, Cancelled, Failed and a confirmed Completed", async () => {
    const request = scheduleRequest("dlv-events", "drone-events");
    await bed.client.scheduleDelivery(request);
    await bed.client.rescheduleDelivery({ deliveryId: "dlv-events", deadline: inHours(30), updateMask: { paths: ["deadline"] } });
    await bed.client.rescheduleDelivery({ deliveryId: "dlv-events", deadline: inHours(31), updateMask: { paths: ["deadline"] } });
    // The same change again enters nothing, so publishes nothing.
    const { delivery: again } = await bed.client.rescheduleDelivery({ deliveryId: "dlv-events", deadline: inHours(31), updateMask: { paths: ["deadline"] } });
    const repeatedDeadline = again?.deadline;
    await bed.client.rescheduleDelivery({ deliveryId: "dlv-events", deadline: repeatedDeadline, updateMask: { paths: ["deadline"] } });
    await bed.client.cancelDelivery({ deliveryId: "dlv-events", reason: "moved away" });
    await bed.client.cancelDelivery({ deliveryId: "dlv-events", reason: "moved away" });
    const events = await bed.published("dlv-events", [CREATED, RESCHEDULED, RESCHEDULED, RESCHEDULED, CANCELLED]);
    expect(events.map((m) => m.msgId)).toEqual([
      "dlv-events:CREATED",
      "dlv-events:RESCHEDULED:1",
      "dlv-events:RESCHEDULED:2",
      "dlv-events:RESCHEDULED:3",
      "dlv-events:CANCELLED",
    ]);
    expect(events.map((m) => m.historyIndex)).toEqual(["0", "1", "2", "3", "4"]);
    expect(events[4]?.event.reason).toBe("moved away");
    expect(events.map((m) => m.seq)).toEqual([...events.map((m) => m.seq)].sort((a, b) => a - b));

    await bed.schedule("dlv-failed", "drone-events");
    await bed.client.failDelivery({ deliveryId: "dlv-failed", reason: "no drone could fly" });
    const failed = await bed.published("dlv-failed", [CREATED, FAILED]);
    expect(failed[1]).toMatchObject({ msgId: "dlv-failed:FAILED", event: { reason: "no drone could fly", previousStage: CREATED } });

    await bed.schedule("dlv-confirmed", "drone-events");
    await bed.client.confirmDelivery({ deliveryId: "dlv-confirmed", confirmationType: 1 });
    const confirmed = await bed.published("dlv-confirmed", [CREATED, COMPLETED]);
    expect(confirmed[1]?.event.location).toMatchObject(DROPOFF);
    expect(timestampDate(confirmed[1]!.event.eventTime!).getTime()).toBeGreaterThanOrEqual(timestampDate(confirmed[0]!.event.eventTime!).getTime());

    // The history keeps every event once, in order; a schedule repeated publishes nothing more.
    expect((await bed.client.scheduleDelivery(request)).created).toBe(false);
    await vi.waitFor(async () => {
      const { events: history } = await bed.client.getDeliveryHistory({ deliveryId: "dlv-events" });
      expect(history).toEqual(events.map((m) => m.event));
    }, EVENTUALLY);
  });
});
