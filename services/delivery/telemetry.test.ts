// The telemetry consumer's write throttling: stages are written at once, positions at most once
// per DELIVERY_LOCATION_WRITE_INTERVAL_MS per delivery.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { deliveryKey } from "./keys.js";
import { DeliveryTestBed, DROPOFF, FlightStage, PICKUP } from "./test-support.js";

let bed: DeliveryTestBed;

beforeAll(async () => {
  bed = await DeliveryTestBed.start({ DELIVERY_LOCATION_WRITE_INTERVAL_MS: String(3_600_000) });
});

afterAll(async () => {
  await bed?.stop();
});

/** How many times the delivery's record was written (the bucket keeps up to 5 values per key). */
async function writesOf(deliveryId: string): Promise<number> {
  let count = 0;
  for await (const entry of await bed.store.records.kv.history({ key: deliveryKey(deliveryId) })) {
    if (entry.operation === "PUT") count++;
  }
  return count;
}

function along(from: typeof PICKUP, to: typeof PICKUP, fraction: number) {
  return {
    latitude: from.latitude + (to.latitude - from.latitude) * fraction,
    longitude: from.longitude + (to.longitude - from.longitude) * fraction,
    altitude: 100,
  };
}

describe("telemetry write throttling", () => {
  it("writes a delivery when it enters a stage, not for every position", async () => {
    await bed.schedule("dlv-throttle", "drone-throttle");
    let seq = 0;
    const home = { latitude: 47.59, longitude: -122.31, altitude: 0 };
    for (let i = 0; i < 20; i++) await bed.fly("drone-throttle", "dlv-throttle", FlightStage.HEADED_TO_PICKUP, ++seq, along(home, PICKUP, i / 20));
    await bed.reaches("dlv-throttle", DeliveryStage.HEADED_TO_PICKUP);
    for (let i = 0; i < 20; i++) await bed.fly("drone-throttle", "dlv-throttle", FlightStage.HEADED_TO_DROPOFF, ++seq, along(PICKUP, DROPOFF, i / 20));
    await bed.telemetryHandled();

    const delivery = await bed.reaches("dlv-throttle", DeliveryStage.HEADED_TO_DROPOFF);
    // Created, HeadedToPickup (with the first position), HeadedToDropoff (with its first position).
    expect(await writesOf("dlv-throttle")).toBe(3);
    expect(delivery.lastKnownLocation).toMatchObject(along(PICKUP, DROPOFF, 0));

    await bed.fly("drone-throttle", "dlv-throttle", FlightStage.DROPPING_OFF, ++seq, DROPOFF);
    const done = await bed.reaches("dlv-throttle", DeliveryStage.COMPLETED);
    expect(done.lastKnownLocation).toMatchObject(DROPOFF);
    expect(await writesOf("dlv-throttle")).toBe(4);
  });
});
