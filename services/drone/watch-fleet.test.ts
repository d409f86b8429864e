// WatchFleet over real gRPC against a real nats-server: every drone first, then the fleet's live
// location events; the call's subscription ends with the call.
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService, type WatchFleetResponse } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createClient, type Client } from "../../lib/grpc/index.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { droneModule } from "./module.js";
import { FLEET_LOCATIONS } from "./watch-fleet.js";

const HOME = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const FLEET_ENV = {
  DRONE_FLEET_SIZE: "4",
  DRONE_HOME_BASE: `${HOME.latitude},${HOME.longitude}`,
  DRONE_MAX_PAYLOADS_KG: "5",
  DRONE_SPEED_MPS: "15",
  DRONE_SPREAD_KM: "2",
  DRONE_RECLAIM_INTERVAL_MS: "0",
  DRONE_TIME_SCALE: "120",
  DRONE_TELEMETRY_HZ: "5",
};

let nats: TestNatsServer;
let service: RunningService;
let client: Client<typeof DroneSchedulerService>;

beforeAll(async () => {
  nats = await startNatsServer({ monitoring: true });
  service = await startTestService(droneModule, nats.url, { env: FLEET_ENV });
  client = createClient(DroneSchedulerService, { address: service.address });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await nats?.stop();
});

/**
 * Subscriptions to every drone's locations on the server: the DRONE_TELEMETRY stream's own, and
 * WatchFleet's (nothing else listens to every drone here).
 */
async function fleetSubscriptions(): Promise<number> {
  const res = await fetch(`${nats.monitorUrl!}/subsz?subs=1`);
  const body = (await res.json()) as { subscriptions_list?: { subject: string }[] };
  return (body.subscriptions_list ?? []).filter((s) => s.subject === FLEET_LOCATIONS).length;
}

describe("WatchFleet", () => {
  it("sends every drone, then live location events, and unsubscribes when the call ends", async () => {
    const before = await fleetSubscriptions();
    const controller = new AbortController();
    const iterator = client.watchFleet({}, { signal: controller.signal })[Symbol.asyncIterator]();
    const next = async (): Promise<WatchFleetResponse> => {
      const result = await iterator.next();
      if (result.done) throw new Error("the watch ended");
      return result.value;
    };
    try {
      const start: string[] = [];
      for (let i = 0; i < 4; i++) {
        const update = await next();
        expect(update.update.case).toBe("drone");
        if (update.update.case === "drone") {
          expect(update.update.value.stage).toBe(FlightStage.IDLE);
          start.push(update.update.value.droneId);
        }
      }
      expect(start).toEqual(["drone-0001", "drone-0002", "drone-0003", "drone-0004"]);
      expect(await fleetSubscriptions()).toBe(before + 1);

      const { assignment } = await client.assignDrone({
        deliveryId: "dlv-watched",
        ownerId: "acct-demo",
        pickup: HOME,
        dropoff: { latitude: 47.62, longitude: -122.35, altitude: 0 },
        packages: [{ packageId: "p1", size: PackageSize.SMALL, weightKg: 1 }],
      });
      for (;;) {
        const update = await next();
        if (update.update.case !== "location" || update.update.value.deliveryId !== "dlv-watched") continue;
        const event = update.update.value;
        expect(event.droneId).toBe(assignment?.droneId);
        expect(event.sequence).toBeGreaterThan(0n);
        expect(event.position?.latitude).toEqual(expect.any(Number));
        break;
      }
    } finally {
      controller.abort();
      await iterator.return?.().catch(() => undefined);
    }
    await vi.waitFor(async () => expect(await fleetSubscriptions()).toBe(before), { timeout: 10_000, interval: 50 });
  });
});
