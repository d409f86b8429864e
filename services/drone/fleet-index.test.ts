// The fleet index: its search order against a full sort of the fleet, and AssignDrone through it
// against a real nats-server.
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "nats";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DroneSchema, DroneStatus, FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { AssignDroneRequestSchema, DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClient, type Client } from "../../lib/grpc/index.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { isRevisionConflict, type Versioned } from "../../lib/store/proto-kv-store.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { DroneAssigner } from "./assign.js";
import { claimedDrone, freedDrone } from "./claims.js";
import { encodeDroneRecord, type DroneRecord } from "./drone-record.js";
import { cellKmFor, FleetIndex, nearestFirst, snapshotView, type SyncedFleetView } from "./fleet-index.js";
import { withReturnFlight } from "./flight-start.js";
import type { FlightTiming } from "./flight.js";
import { destination } from "./geo.js";
import { droneModule } from "./module.js";
import { openDroneStore, type DroneStore } from "./store.js";
import { seededRandom } from "../../lib/devtools/seeded-random.js";

const HOME = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const TIMING: FlightTiming = { timeScale: 1, pickupSeconds: 30, dropoffSeconds: 30, tickMs: 1000 };

function near(rand: () => number, km: number): { latitude: number; longitude: number; altitude: number } {
  const p = destination(HOME, rand() * 360, km * Math.sqrt(rand()));
  return { latitude: p.latitude, longitude: p.longitude, altitude: 0 };
}

/**
 * A random fleet around HOME at `nowMs`: drones on the ground, drones flying home (available,
 * moving), claimed drones, payload limits 2.5 / 5 / 10, a few far away.
 */
function randomFleet(rand: () => number, size: number, nowMs: number): DroneRecord[] {
  return Array.from({ length: size }, (_, i) => {
    const home = near(rand, 3);
    const far = rand() < 0.05;
    const position = far ? near(rand, 40) : near(rand, 3);
    const kind = rand();
    const drone = create(DroneSchema, {
      droneId: `drone-${String(i + 1).padStart(4, "0")}`,
      status: kind < 0.2 ? DroneStatus.ASSIGNED : DroneStatus.AVAILABLE,
      deliveryId: kind < 0.2 ? `d-${i}` : "",
      stage: FlightStage.IDLE,
      position,
      homeBase: home,
      maxPayloadKg: [2.5, 5, 10][i % 3]!,
      speedMps: 15,
      batteryPercent: 100,
      updateTime: timestampNow(),
    });
    const record: DroneRecord = { drone, flight: undefined };
    // Some fly home, started up to a few minutes ago (some arrived already).
    return kind > 0.5 ? withReturnFlight(record, Math.round(nowMs - rand() * 300_000), TIMING) : record;
  });
}

/** The search tests feed the index by hand and never sync it. */
const NO_PROBE = { lastRevision: async () => 0, nextRevision: async () => 0 };

const ids = (records: Iterable<Versioned<DroneRecord>>): string[] => [...records].map((r) => r.value.drone.droneId);

describe("fleet index search", () => {
  it("hands out available capable drones in the order of a full sort of the fleet, moving drones included", () => {
    const rand = seededRandom(7);
    const t0 = Date.now();
    for (const size of [1, 5, 40, 300]) {
      for (const cellKm of [cellKmFor(size, 3), 0.05, 1, 10]) {
        let clock = t0;
        const index = new FleetIndex({} as never, NO_PROBE, { cellKm, referenceLatitude: HOME.latitude, now: () => clock, log: pino({ level: "silent" }) });
        const fleet = randomFleet(rand, size, t0);
        const stored = fleet.map((record, i) => ({ value: record, revision: i + 1 }));
        stored.forEach((s) => index.applyEntry({ key: `drone.${s.value.drone.droneId}`, revision: s.revision, operation: "PUT", value: encodeDroneRecord(s.value) }));
        const full = snapshotView(stored);
        for (let q = 0; q < 20; q++) {
          // Searched later than indexed: moving drones have moved on along their paths.
          const atMs = Math.round(t0 + rand() * 200_000);
          clock = atMs;
          const pickup = q % 5 === 0 ? near(rand, 60) : near(rand, 4);
          const kg = [1, 4, 7, 11][q % 4]!;
          expect(ids(index.nearest(pickup, kg, atMs)), `size ${size}, cell ${cellKm} km, query ${q}`).toEqual(ids(full.nearest(pickup, kg, atMs)));
        }
        expect(index.largestPayloadKg()).toBe(full.largestPayloadKg());
        expect(ids(index.claimed(5))).toEqual(ids(full.claimed(5)));
      }
    }
  });

  it("follows changes: a claimed drone leaves the search, a freed one comes back, a deleted one is gone", () => {
    const t0 = Date.now();
    const index = new FleetIndex({} as never, NO_PROBE, { cellKm: 0.5, referenceLatitude: HOME.latitude, now: () => t0, log: pino({ level: "silent" }) });
    const [a, b] = randomFleet(seededRandom(3), 2, t0).map((r) => ({ ...r, drone: create(DroneSchema, { ...r.drone, status: DroneStatus.AVAILABLE, deliveryId: "" }) }));
    const put = (record: DroneRecord, revision: number) =>
      index.applyEntry({ key: `drone.${record.drone.droneId}`, revision, operation: "PUT", value: encodeDroneRecord(record) });
    put(a!, 1);
    put(b!, 2);
    expect(ids(index.nearest(HOME, 1, t0)).sort()).toEqual(["drone-0001", "drone-0002"]);
    put(claimedDrone(a!, "x", new Date(t0)), 3);
    expect(ids(index.nearest(HOME, 1, t0))).toEqual(["drone-0002"]);
    expect(ids(index.heldFor("x", 0))).toEqual(["drone-0001"]);
    // A replayed older value does not undo the newer one.
    put(a!, 1);
    expect(ids(index.nearest(HOME, 1, t0))).toEqual(["drone-0002"]);
    put(freedDrone(claimedDrone(a!, "x", new Date(t0)), new Date(t0), { turnHome: false, timing: TIMING }), 4);
    expect(ids(index.nearest(HOME, 1, t0)).sort()).toEqual(["drone-0001", "drone-0002"]);
    expect(index.heldFor("x", 0)).toEqual([]);
    index.applyEntry({ key: "drone.drone-0002", revision: 5, operation: "DEL", value: new Uint8Array() });
    expect(ids(index.nearest(HOME, 1, t0))).toEqual(["drone-0001"]);
  });
});

type Drones = Client<typeof DroneSchedulerService>;

function request(deliveryId: string, pickup = HOME) {
  return {
    deliveryId,
    ownerId: "acct-index",
    pickup,
    dropoff: { latitude: 47.62, longitude: -122.35, altitude: 0 },
    packages: [{ packageId: `${deliveryId}-p1`, size: PackageSize.SMALL, weightKg: 1 }],
  };
}

/** Writes `change` of the drone's current record, again after a lost race (the flying instance writes too). */
async function rewrite(store: DroneStore, droneId: string, change: (r: DroneRecord) => DroneRecord): Promise<void> {
  for (;;) {
    const current = (await store.getDrone(droneId))!;
    try {
      await store.updateDrone(change(current.value), current.revision);
      return;
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }
}

describe("AssignDrone through the fleet index", () => {
  const FLEET = 30;
  let nats: TestNatsServer;
  let first: RunningService;
  let second: RunningService;
  let clients: Drones[];
  let nc: NatsConnection;
  let store: DroneStore;

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = { DRONE_FLEET_SIZE: String(FLEET), DRONE_MAX_PAYLOADS_KG: "10", DRONE_SPREAD_KM: "2", DRONE_RECLAIM_INTERVAL_MS: "0" };
    first = await startTestService(droneModule, nats.url, { env });
    second = await startTestService(droneModule, nats.url, { env });
    clients = [first, second].map((s) => createClient(DroneSchedulerService, { address: s.address }));
    nc = await connect({ servers: nats.url });
    store = await openDroneStore(nc.jetstream());
  });

  afterAll(async () => {
    for (const c of clients ?? []) c.close();
    await nc?.close();
    await second?.stop();
    await first?.stop();
    await nats?.stop();
  });

  it("moves on to the next nearest drone when an index entry is stale", async () => {
    // A view that says it is caught up but was read before the nearest drone was claimed (the
    // fleet is fresh: nothing else writes the drones meanwhile).
    const snapshot = await store.fleet();
    const stale: SyncedFleetView = { ...snapshotView(snapshot), sync: async () => true };
    const now = new Date();
    const [nearest, next] = ids(nearestFirst(snapshot, HOME, now.getTime()));
    await rewrite(store, nearest!, (r) => claimedDrone(r, "ghost-stale", now));

    const assigner = new DroneAssigner(store, { claimLeaseMs: 30_000, timing: TIMING, now: () => now, index: stale });
    const { assignment } = await assigner.assign(create(AssignDroneRequestSchema, request("idx-stale-1")));
    expect(assignment.droneId).toBe(next);
    expect((await store.getDrone(nearest!))?.value.drone.deliveryId).toBe("ghost-stale");
    await clients[0]!.releaseAssignment({ deliveryId: "idx-stale-1", reason: "test done" });
    await rewrite(store, nearest!, (r) => freedDrone(r, new Date(), { turnHome: false, timing: TIMING }));
  });

  it("finds a drone the moment it becomes available, written through another connection", async () => {
    const fleet = await store.fleet();
    const target = fleet.find((d) => d.value.drone.status === DroneStatus.AVAILABLE && !d.value.flight)!.value;
    const pad = target.drone.homeBase!;
    // Claimed by a call that stopped: not handed out, though its pad is the pickup.
    await rewrite(store, target.drone.droneId, (r) => claimedDrone(r, "ghost-idx", new Date()));
    const other = await clients[0]!.assignDrone(request("idx-avail-1", pad));
    expect(other.assignment?.droneId).not.toBe(target.drone.droneId);
    // Freed directly in the bucket, then asked for at once: the index catches up first.
    await rewrite(store, target.drone.droneId, (r) => freedDrone(r, new Date(), { turnHome: false, timing: TIMING }));
    const found = await clients[1]!.assignDrone(request("idx-avail-2", pad));
    expect(found.assignment?.droneId).toBe(target.drone.droneId);
    for (const id of ["idx-avail-1", "idx-avail-2"]) await clients[0]!.releaseAssignment({ deliveryId: id, reason: "test done" });
  });

  it("never hands one drone out twice to concurrent calls through two instances", async () => {
    // Each caller retries a transient answer (a lost race, a slow machine) as the Scheduler does;
    // only RESOURCE_EXHAUSTED (no drone free) ends a call without a drone.
    const assignWithRetries = async (i: number): Promise<string | undefined> => {
      const pickup = near(seededRandom(i), 2);
      for (let attempt = 1; ; attempt++) {
        try {
          return (await clients[i % 2]!.assignDrone(request(`idx-burst-${i}`, pickup))).assignment!.droneId;
        } catch (error) {
          if (error instanceof ConnectError && error.code === Code.ResourceExhausted) return undefined;
          if (attempt >= 5) throw error;
        }
      }
    };
    const calls = Array.from({ length: FLEET + 10 }, (_, i) => assignWithRetries(i));
    const won = (await Promise.all(calls)).filter((id): id is string => id !== undefined);
    expect(won).toHaveLength(FLEET);
    expect(new Set(won).size).toBe(FLEET);
    for (let i = 0; i < FLEET + 10; i++) await clients[0]!.releaseAssignment({ deliveryId: `idx-burst-${i}`, reason: "test done" });
  });

});
