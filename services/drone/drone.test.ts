// The Drone service over real gRPC against a real nats-server.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs, durationMs } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { AssignmentSchema, AssignmentState, DroneStatus, FlightStage, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService, type AssignDroneRequest } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createClient, fieldViolations, retryDelayMs, type Client } from "../../lib/grpc/index.js";
import { ConfigError } from "../../lib/service/config.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AssignDroneRequestSchema } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { healthStatus, reflectionFilesFor, reflectionServices } from "../../test/harness/grpc-probes.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { claimedDrone } from "./claims.js";
import { readDroneConfig } from "./config.js";
import { distanceKm } from "./geo.js";
import { droneModule } from "./module.js";
import { openDroneStore, type DroneStore } from "./store.js";
import { rpcError } from "../../test/harness/rpc.js";

type Drones = Client<typeof DroneSchedulerService>;

const HOME = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const DROPOFF = { latitude: 47.62, longitude: -122.35, altitude: 0 };
const FLEET_ENV = {
  DRONE_FLEET_SIZE: "6",
  DRONE_HOME_BASE: `${HOME.latitude},${HOME.longitude}`,
  DRONE_MAX_PAYLOADS_KG: "2.5,5,10",
  DRONE_SPEED_MPS: "15",
  DRONE_SPREAD_KM: "2",
  DRONE_RECLAIM_INTERVAL_MS: "0",
};


type AssignInit = Exclude<MessageInitShape<typeof AssignDroneRequestSchema>, AssignDroneRequest>;

function assignRequest(deliveryId: string, init: Partial<AssignInit> = {}): AssignInit {
  return {
    deliveryId,
    ownerId: "acct-demo",
    pickup: HOME,
    dropoff: DROPOFF,
    packages: [{ packageId: `${deliveryId}-p1`, size: PackageSize.SMALL, weightKg: 1 }],
    ...init,
  };
}

/**
 * What a drone is apart from its flight: a drone in flight changes position and stage with the
 * clock, and its record at each stage change (with a fresh `update_time`).
 */
function standing(d: Drone) {
  return { droneId: d.droneId, status: d.status, deliveryId: d.deliveryId, homeBase: d.homeBase, maxPayloadKg: d.maxPayloadKg, speedMps: d.speedMps };
}

async function allDrones(client: Drones, droneStatus = DroneStatus.UNSPECIFIED): Promise<Drone[]> {
  const { drones, nextPageToken } = await client.listDrones({ pageSize: 1000, status: droneStatus });
  expect(nextPageToken).toBe("");
  return drones;
}

/** A test's own connection to the service's bucket, to look behind the API (crash states). */
async function openStore(url: string): Promise<{ nc: NatsConnection; store: DroneStore }> {
  const nc = await connect({ servers: url });
  return { nc, store: await openDroneStore(nc.jetstream()) };
}

/**
 * Claims a drone for a delivery directly in the store, as a call that stopped right after it would
 * (again after a lost race: the flying instance may store a stage change of the drone meanwhile).
 */
async function leaveClaim(store: DroneStore, droneId: string, deliveryId: string, at: Date): Promise<void> {
  for (;;) {
    const current = await store.getDrone(droneId);
    try {
      await store.updateDrone(claimedDrone(current!.value, deliveryId, at), current!.revision);
      return;
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }
}

describe("drone configuration", () => {
  it("reads defaults and refuses bad values naming the variable", () => {
    const config = readDroneConfig({});
    expect(config).toMatchObject({ fleetSize: 20, speedMps: 15, maxPayloadsKg: [2.5, 5, 10], homeBase: { latitude: 47.6062, longitude: -122.3321 } });
    expect(() => readDroneConfig({ DRONE_HOME_BASE: "north" })).toThrow(/DRONE_HOME_BASE/);
    expect(() => readDroneConfig({ DRONE_HOME_BASE: "91,0" })).toThrow(ConfigError);
    expect(() => readDroneConfig({ DRONE_MAX_PAYLOADS_KG: "5,-1" })).toThrow(/DRONE_MAX_PAYLOADS_KG/);
    expect(() => readDroneConfig({ DRONE_FLEET_SIZE: "0" })).toThrow(/DRONE_FLEET_SIZE/);
    expect(config).toMatchObject({ timeScale: 1, pickupSeconds: 30, dropoffSeconds: 30, telemetryHz: 1, simulatorLeaseMs: 5_000 });
    expect(readDroneConfig({ DRONE_TIME_SCALE: "600", DRONE_TELEMETRY_HZ: "10" })).toMatchObject({ timeScale: 600, telemetryHz: 10 });
    expect(() => readDroneConfig({ DRONE_TIME_SCALE: "0" })).toThrow(/DRONE_TIME_SCALE/);
    expect(() => readDroneConfig({ DRONE_TELEMETRY_HZ: "fast" })).toThrow(/DRONE_TELEMETRY_HZ/);
    expect(() => readDroneConfig({ DRONE_PICKUP_SECONDS: "-1" })).toThrow(/DRONE_PICKUP_SECONDS/);
    expect(() => readDroneConfig({ DRONE_SIMULATOR_LEASE_MS: "10" })).toThrow(/DRONE_SIMULATOR_LEASE_MS/);
  });
});

describe("drone service", () => {
  let nats: TestNatsServer;
  let service: RunningService;
  let client: Drones;
  let nc: NatsConnection;
  let store: DroneStore;

  beforeAll(async () => {
    nats = await startNatsServer();
    service = await startTestService(droneModule, nats.url, { env: FLEET_ENV });
    client = createClient(DroneSchedulerService, { address: service.address });
    ({ nc, store } = await openStore(nats.url));
  });

  afterAll(async () => {
    client?.close();
    await nc?.close();
    await service?.stop();
    await nats?.stop();
  });

  it("seeds the fleet from its environment, and a second instance changes nothing", async () => {
    const drones = await allDrones(client);
    expect(drones.map((d) => d.droneId)).toEqual(["drone-0001", "drone-0002", "drone-0003", "drone-0004", "drone-0005", "drone-0006"]);
    expect(drones.map((d) => d.maxPayloadKg)).toEqual([2.5, 5, 10, 2.5, 5, 10]);
    for (const d of drones) {
      expect(d).toMatchObject({ status: DroneStatus.AVAILABLE, stage: FlightStage.IDLE, speedMps: 15, batteryPercent: 100, deliveryId: "" });
      expect(d.position).toEqual(d.homeBase);
      expect(distanceKm(d.position!, HOME)).toBeLessThanOrEqual(2.001);
    }
    expect(new Set(drones.map((d) => `${d.position?.latitude},${d.position?.longitude}`)).size).toBe(6);

    const second = await startTestService(droneModule, nats.url, { env: FLEET_ENV });
    try {
      const secondClient = createClient(DroneSchedulerService, { address: second.address });
      expect(await allDrones(secondClient)).toEqual(drones);
      secondClient.close();
    } finally {
      await second.stop();
    }
  });

  it("assigns the nearest drone able to carry the packages and plans its flight", async () => {
    const fleet = await allDrones(client);
    const pad3 = fleet.find((d) => d.droneId === "drone-0003")!.homeBase!;
    const pad1 = fleet.find((d) => d.droneId === "drone-0001")!.homeBase!;

    // Picked up at drone-0003's own pad: drone-0003 (10 kg) is nearest and carries 7 kg.
    const packages = [
      { packageId: "near-p1", size: PackageSize.MEDIUM, weightKg: 4 },
      { packageId: "near-p2", size: PackageSize.SMALL, weightKg: 3, tag: "fragile" },
    ];
    const { assignment, drone } = await client.assignDrone(assignRequest("near-1", { pickup: pad3, packages, expedited: true }));
    // The pickup is at the drone's own pad: no way to fly there, so it is picking up at once.
    expect(drone).toMatchObject({ droneId: "drone-0003", status: DroneStatus.ASSIGNED, deliveryId: "near-1", stage: FlightStage.PICKING_UP });
    expect(assignment).toMatchObject({
      deliveryId: "near-1",
      droneId: "drone-0003",
      ownerId: "acct-demo",
      packageIds: ["near-p1", "near-p2"],
      payloadKg: 7,
      state: AssignmentState.ACTIVE,
      releaseReason: "",
    });
    expect(assignment?.endTime).toBeUndefined();
    const legKm = distanceKm(pad3, DROPOFF);
    expect(assignment!.plannedDistanceKm).toBeCloseTo(2 * legKm, 6);
    const assignAt = timestampMs(assignment!.assignTime!);
    expect(timestampMs(assignment!.pickupEta!) - assignAt).toBeLessThanOrEqual(1);
    // 30 s loading at the pickup (DRONE_PICKUP_SECONDS), then the leg to the drop-off at 15 m/s.
    expect(timestampMs(assignment!.dropoffEta!) - assignAt).toBeCloseTo(30_000 + (legKm * 1000 * 1000) / 15, -1);

    // Picked up at drone-0001's pad with 4 kg: drone-0001 (2.5 kg) cannot; the nearest capable free one can.
    const expected = fleet
      .filter((d) => d.maxPayloadKg >= 4 && d.droneId !== "drone-0003")
      .sort((a, b) => distanceKm(a.position!, pad1) - distanceKm(b.position!, pad1))[0]!;
    const heavy = await client.assignDrone(
      assignRequest("near-2", { pickup: pad1, packages: [{ packageId: "near-2-p", size: PackageSize.LARGE, weightKg: 4 }] }),
    );
    expect(heavy.assignment?.droneId).toBe(expected.droneId);

    for (const id of ["near-1", "near-2"]) expect((await client.releaseAssignment({ deliveryId: id, reason: "test done" })).released).toBe(true);
  });

  it("answers the same assignment to a repeated AssignDrone, and GetAssignment reads it", async () => {
    const first = await client.assignDrone(assignRequest("repeat-1"));
    const again = await client.assignDrone(assignRequest("repeat-1"));
    expect(again.assignment).toEqual(first.assignment);
    expect(again.drone?.droneId).toBe(first.drone?.droneId);
    expect((await client.getAssignment({ deliveryId: "repeat-1" })).assignment).toEqual(first.assignment);
    const claimed = (await allDrones(client, DroneStatus.ASSIGNED)).filter((d) => d.deliveryId === "repeat-1");
    expect(claimed.map((d) => d.droneId)).toEqual([first.drone?.droneId]);
    await client.releaseAssignment({ deliveryId: "repeat-1", reason: "test done" });
  });

  it("resolves concurrent AssignDrone calls for one delivery to one assignment and one drone", async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => client.assignDrone(assignRequest("race-1"))));
    const first = results[0]!;
    for (const r of results) {
      expect(r.assignment).toEqual(first.assignment);
      expect(r.drone?.droneId).toBe(first.assignment?.droneId);
    }
    const fleet = await allDrones(client);
    expect(fleet.filter((d) => d.deliveryId === "race-1").map((d) => d.droneId)).toEqual([first.assignment?.droneId]);
    expect(fleet.filter((d) => d.status === DroneStatus.ASSIGNED)).toHaveLength(1);
    await client.releaseAssignment({ deliveryId: "race-1", reason: "test done" });
    expect(await allDrones(client, DroneStatus.ASSIGNED)).toEqual([]);
  });

  it("answers FAILED_PRECONDITION when the packages are too heavy for every drone", async () => {
    const packages = [
      { packageId: "heavy-p1", size: PackageSize.LARGE, weightKg: 6 },
      { packageId: "heavy-p2", size: PackageSize.LARGE, weightKg: 5 },
    ];
    const error = await rpcError(client.assignDrone(assignRequest("heavy-1", { packages })));
    expect(error.code).toBe(Code.FailedPrecondition);
    const [failure] = error.findDetails(PreconditionFailureSchema);
    expect(failure?.violations).toHaveLength(1);
    expect(failure?.violations[0]).toMatchObject({ type: "PAYLOAD", subject: "delivery:heavy-1" });
    expect(failure?.violations[0]?.description).toContain("11 kg");
    expect((await rpcError(client.getAssignment({ deliveryId: "heavy-1" }))).code).toBe(Code.NotFound);
    expect(await allDrones(client, DroneStatus.ASSIGNED)).toEqual([]);
  });

  it("answers INVALID_ARGUMENT naming each bad field of AssignDrone", async () => {
    const bad = await rpcError(
      client.assignDrone({
        deliveryId: "has.dot",
        ownerId: "",
        dropoff: { latitude: 91, longitude: -181, altitude: 0 },
        packages: [
          { packageId: "", size: PackageSize.UNSPECIFIED, weightKg: 0 },
          { packageId: "dup", size: 42 as PackageSize, weightKg: -1, tag: "x".repeat(257) },
          { packageId: "dup", size: PackageSize.SMALL, weightKg: 1001 },
        ],
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual(
      [
        "delivery_id",
        "owner_id",
        "pickup",
        "dropoff.latitude",
        "dropoff.longitude",
        "packages[0].package_id",
        "packages[0].size",
        "packages[0].weight_kg",
        "packages[1].size",
        "packages[1].weight_kg",
        "packages[1].tag",
        "packages",
        "packages[2].weight_kg",
      ].sort(),
    );
    // Distinct package ids are a rule of the list, reported on it.
    expect(fieldViolations(bad).find((v) => v.field === "packages")?.description).toBe("must not repeat a package_id");

    const none = await rpcError(client.assignDrone(assignRequest("no-packages", { packages: [] })));
    expect(fieldViolations(none)).toEqual([{ field: "packages", description: "must contain at least 1 item(s)" }]);
    const longId = await rpcError(client.assignDrone(assignRequest("d".repeat(129), { packages: [{ packageId: "p", size: PackageSize.SMALL, weightKg: 1 }] })));
    expect(fieldViolations(longId).map((v) => v.field)).toEqual(["delivery_id"]);
    expect(await allDrones(client, DroneStatus.ASSIGNED)).toEqual([]);
  });

  it("releases an active assignment once, frees its drone, and treats other releases as no-ops", async () => {
    const { assignment } = await client.assignDrone(assignRequest("rel-1"));
    const results = await Promise.all(Array.from({ length: 5 }, () => client.releaseAssignment({ deliveryId: "rel-1", reason: "cancelled by the customer" })));
    expect(results.filter((r) => r.released)).toHaveLength(1);
    const ended = results.find((r) => r.released)!.assignment!;
    expect(ended).toMatchObject({ state: AssignmentState.RELEASED, releaseReason: "cancelled by the customer", droneId: assignment?.droneId });
    expect(ended.endTime).toBeDefined();
    for (const r of results) expect(r.assignment).toEqual(ended);

    // Released right after the start: free at once, and back on its pad a moment later (as long as
    // it flew out, which a loaded machine makes longer).
    const { drone } = await client.getDrone({ droneId: assignment!.droneId });
    expect(drone).toMatchObject({ status: DroneStatus.AVAILABLE, deliveryId: "" });
    await vi.waitFor(async () => expect((await client.getDrone({ droneId: assignment!.droneId })).drone?.stage).toBe(FlightStage.IDLE), {
      timeout: 30_000,
      interval: 50,
    });

    const again = await client.releaseAssignment({ deliveryId: "rel-1", reason: "other" });
    expect(again).toMatchObject({ released: false });
    expect(again.assignment).toEqual(ended);
    const unknown = await client.releaseAssignment({ deliveryId: "never-assigned" });
    expect(unknown.released).toBe(false);
    expect(unknown.assignment).toBeUndefined();

    // A released delivery keeps its assignment: assigning it again answers it and claims nothing.
    const repeat = await client.assignDrone(assignRequest("rel-1"));
    expect(repeat.assignment).toEqual(ended);
    expect(await allDrones(client, DroneStatus.ASSIGNED)).toEqual([]);

    const bad = await rpcError(client.releaseAssignment({ deliveryId: "", reason: "r".repeat(1025) }));
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual(["delivery_id", "reason"]);
  });

  it("reuses a drone left claimed by a call that stopped before writing the assignment", async () => {
    // The farthest drone from the pickup, so only the reuse can explain choosing it.
    const fleet = await allDrones(client);
    const farthest = [...fleet].sort((a, b) => distanceKm(b.position!, HOME) - distanceKm(a.position!, HOME))[0]!;
    await leaveClaim(store, farthest.droneId, "crash-1", new Date());

    const { assignment, drone } = await client.assignDrone(assignRequest("crash-1"));
    expect(assignment?.droneId).toBe(farthest.droneId);
    expect(drone).toMatchObject({ status: DroneStatus.ASSIGNED, deliveryId: "crash-1" });
    expect((await allDrones(client, DroneStatus.ASSIGNED)).map((d) => d.droneId)).toEqual([farthest.droneId]);
    await client.releaseAssignment({ deliveryId: "crash-1", reason: "test done" });
  });

  it("frees drones still claimed for an extra attempt once the delivery's assignment exists", async () => {
    const fleet = await allDrones(client);
    // Two claims for one delivery, as two racing calls that both stopped would leave them.
    await leaveClaim(store, fleet[0]!.droneId, "crash-2", new Date());
    await leaveClaim(store, fleet[1]!.droneId, "crash-2", new Date());
    const { assignment } = await client.assignDrone(assignRequest("crash-2"));
    expect([fleet[0]!.droneId, fleet[1]!.droneId]).toContain(assignment?.droneId);
    expect((await allDrones(client, DroneStatus.ASSIGNED)).map((d) => d.droneId)).toEqual([assignment?.droneId]);
    await client.releaseAssignment({ deliveryId: "crash-2", reason: "test done" });
  });

  it("finishes a release retried after a stop between ending the assignment and freeing the drone", async () => {
    const { assignment } = await client.assignDrone(assignRequest("crash-3"));
    const stored = await store.getAssignment("crash-3");
    await store.updateAssignment(
      create(AssignmentSchema, { ...stored!.value, state: AssignmentState.RELEASED, releaseReason: "compensation", endTime: timestampFromDate(new Date()) }),
      stored!.revision,
    );
    expect((await client.getDrone({ droneId: assignment!.droneId })).drone?.status).toBe(DroneStatus.ASSIGNED);

    const retried = await client.releaseAssignment({ deliveryId: "crash-3", reason: "compensation" });
    expect(retried.released).toBe(false);
    expect(retried.assignment?.state).toBe(AssignmentState.RELEASED);
    expect((await client.getDrone({ droneId: assignment!.droneId })).drone).toMatchObject({ status: DroneStatus.AVAILABLE, deliveryId: "" });
  });

  it("reads drones, and answers NOT_FOUND and INVALID_ARGUMENT for GetDrone and GetAssignment", async () => {
    const { drone } = await client.getDrone({ droneId: "drone-0002" });
    expect(drone).toMatchObject({ droneId: "drone-0002", maxPayloadKg: 5 });
    expect((await rpcError(client.getDrone({ droneId: "drone-9999" }))).code).toBe(Code.NotFound);
    expect((await rpcError(client.getAssignment({ deliveryId: "nothing-here" }))).code).toBe(Code.NotFound);

    const badDrone = await rpcError(client.getDrone({ droneId: "drone.1" }));
    expect(badDrone.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(badDrone).map((v) => v.field)).toEqual(["drone_id"]);
    const badDelivery = await rpcError(client.getAssignment({ deliveryId: "" }));
    expect(fieldViolations(badDelivery)).toEqual([{ field: "delivery_id", description: "value is required" }]);
  });

  it("lists drones a page at a time in id order, filtered by status", async () => {
    const first = await client.listDrones({ pageSize: 4 });
    expect(first.drones.map((d) => d.droneId)).toEqual(["drone-0001", "drone-0002", "drone-0003", "drone-0004"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await client.listDrones({ pageSize: 4, pageToken: first.nextPageToken });
    expect(second.drones.map((d) => d.droneId)).toEqual(["drone-0005", "drone-0006"]);
    expect(second.nextPageToken).toBe("");
    expect((await client.listDrones({})).drones).toHaveLength(6);

    const { assignment } = await client.assignDrone(assignRequest("list-1"));
    const assigned = await client.listDrones({ status: DroneStatus.ASSIGNED });
    expect(assigned.drones.map((d) => d.droneId)).toEqual([assignment?.droneId]);
    const available = await client.listDrones({ status: DroneStatus.AVAILABLE, pageSize: 2 });
    expect(available.drones.every((d) => d.status === DroneStatus.AVAILABLE)).toBe(true);
    let count = available.drones.length;
    let token = available.nextPageToken;
    while (token) {
      const page = await client.listDrones({ status: DroneStatus.AVAILABLE, pageSize: 2, pageToken: token });
      count += page.drones.length;
      token = page.nextPageToken;
    }
    expect(count).toBe(5);
    await client.releaseAssignment({ deliveryId: "list-1", reason: "test done" });

    for (const [request, field] of [
      [{ pageSize: 1001 }, "page_size"],
      [{ pageSize: -1 }, "page_size"],
      [{ pageToken: "garbage!" }, "page_token"],
      [{ pageToken: Buffer.from("{}").toString("base64url") }, "page_token"],
      [{ pageToken: available.nextPageToken }, "page_token"], // issued for another status filter
      [{ status: 9 as DroneStatus }, "status"],
    ] as const) {
      const error = await rpcError(client.listDrones(request));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(fieldViolations(error).map((v) => v.field)).toEqual([field]);
    }
  });

  it("reports an owner's monthly utilization from the assignment records", async () => {
    const owner = "acct-util.team";
    const a = await client.assignDrone(assignRequest("util-1", { ownerId: owner }));
    const b = await client.assignDrone(assignRequest("util-2", { ownerId: owner }));
    await client.assignDrone(assignRequest("util-3", { ownerId: "acct-util" }));
    await client.releaseAssignment({ deliveryId: "util-2", reason: "cancelled" });
    // Completion comes from the flight (minutes away at this time scale): end util-1 as the flight will.
    const stored = await store.getAssignment("util-1");
    const completedAt = new Date(timestampMs(stored!.value.assignTime!) + 60_000);
    await store.updateAssignment(
      create(AssignmentSchema, { ...stored!.value, state: AssignmentState.COMPLETED, endTime: timestampFromDate(completedAt) }),
      stored!.revision,
    );

    const assignedAt = timestampMs(a.assignment!.assignTime!);
    const now = new Date(assignedAt);
    const month = { year: now.getUTCFullYear(), month: now.getUTCMonth() + 1 };
    const usage = await client.getUtilization({ ownerId: owner, month });
    expect(usage).toMatchObject({ ownerId: owner, month, assignmentCount: 2n, completedCount: 1n });
    const released = (await client.getAssignment({ deliveryId: "util-2" })).assignment!;
    const releasedMs = timestampMs(released.endTime!) - timestampMs(b.assignment!.assignTime!);
    // Released on its way to the pickup: it flew 15 m/s for as long as it was assigned.
    expect(timestampMs(released.endTime!)).toBeLessThan(timestampMs(released.pickupEta!));
    expect(usage.distanceKm - a.assignment!.plannedDistanceKm).toBeCloseTo((15 * releasedMs) / 1_000_000, 9);
    expect(durationMs(usage.assignedDuration!)).toBe(60_000 + releasedMs);

    const other = await client.getUtilization({ ownerId: "acct-util", month });
    expect(other).toMatchObject({ assignmentCount: 1n, completedCount: 0n, distanceKm: 0 });
    expect(durationMs(other.assignedDuration!)).toBeGreaterThanOrEqual(0);

    const empty = await client.getUtilization({ ownerId: owner, month: { year: month.year - 1, month: month.month } });
    expect(empty).toMatchObject({ assignmentCount: 0n, completedCount: 0n, distanceKm: 0 });
    expect(durationMs(empty.assignedDuration!)).toBe(0);
    for (const id of ["util-1", "util-3"]) await client.releaseAssignment({ deliveryId: id, reason: "test done" });
    expect(await allDrones(client, DroneStatus.ASSIGNED)).toEqual([]);

    const bad = await rpcError(client.getUtilization({ ownerId: "", month: { year: 1999, month: 13 } }));
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual(["month.month", "month.year", "owner_id"]);
    const missing = await rpcError(client.getUtilization({ ownerId: owner }));
    expect(fieldViolations(missing)).toEqual([{ field: "month", description: "value is required" }]);
  });

  it("reports SERVING and describes itself by reflection", async () => {
    expect(await healthStatus(service.address)).toBe("SERVING");
    expect(await healthStatus(service.address, "dronedelivery.drone.v1.DroneSchedulerService")).toBe("SERVING");
    expect(await reflectionServices(service.address)).toContain("dronedelivery.drone.v1.DroneSchedulerService");
    const files = await reflectionFilesFor(service.address, "dronedelivery.drone.v1.DroneSchedulerService");
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining(["dronedelivery/drone/v1/drone_scheduler_service.proto", "dronedelivery/drone/v1/drone.proto"]),
    );
  });

  it("keeps the fleet and the assignments across a restart", async () => {
    const { assignment } = await client.assignDrone(assignRequest("durable-1"));
    const before = await allDrones(client);
    const port = service.port;
    client.close();
    await service.stop();
    service = await startTestService(droneModule, nats.url, { port, env: FLEET_ENV });
    client = createClient(DroneSchedulerService, { address: service.address });
    expect((await client.getAssignment({ deliveryId: "durable-1" })).assignment).toEqual(assignment);
    const after = await allDrones(client);
    expect(after.map(standing)).toEqual(before.map(standing));
    // Still flying its delivery after the restart: on its way to the pickup.
    expect(after.find((d) => d.droneId === assignment!.droneId)?.stage).toBe(FlightStage.HEADED_TO_PICKUP);
    await client.releaseAssignment({ deliveryId: "durable-1", reason: "test done" });
  });
});

describe("drone service under contention", () => {
  const FLEET = 5;
  let nats: TestNatsServer;
  let service: RunningService;
  let client: Drones;
  let nc: NatsConnection;
  let store: DroneStore;

  beforeAll(async () => {
    nats = await startNatsServer();
    service = await startTestService(droneModule, nats.url, {
      env: { DRONE_FLEET_SIZE: String(FLEET), DRONE_MAX_PAYLOADS_KG: "10", DRONE_SPREAD_KM: "0", DRONE_RECLAIM_INTERVAL_MS: "0" },
    });
    client = createClient(DroneSchedulerService, { address: service.address });
    ({ nc, store } = await openStore(nats.url));
  });

  afterAll(async () => {
    client?.close();
    await nc?.close();
    await service?.stop();
    await nats?.stop();
  });

  it("never assigns one drone twice: a fleet of N takes N of N+3 concurrent deliveries", async () => {
    const ids = Array.from({ length: FLEET + 3 }, (_, i) => `burst-${i}`);
    const outcomes = await Promise.all(
      ids.map((id) =>
        client.assignDrone(assignRequest(id)).then(
          (r) => ({ ok: true as const, droneId: r.assignment!.droneId }),
          (e: ConnectError) => ({ ok: false as const, error: e }),
        ),
      ),
    );
    const won = outcomes.flatMap((o) => (o.ok ? [o] : []));
    const lost = outcomes.flatMap((o) => (o.ok ? [] : [o]));
    expect(won).toHaveLength(FLEET);
    expect(new Set(won.map((o) => o.droneId)).size).toBe(FLEET);
    expect(lost).toHaveLength(3);
    for (const o of lost) {
      expect(o.error.code).toBe(Code.ResourceExhausted);
      expect(retryDelayMs(o.error)).toBe(5_000);
    }
    const fleet = await allDrones(client);
    expect(fleet.every((d) => d.status === DroneStatus.ASSIGNED)).toBe(true);
    expect(new Set(fleet.map((d) => d.deliveryId)).size).toBe(FLEET);
  });

  it("reclaims a drone whose claim outlived its lease without an assignment, and only then", async () => {
    // Free one drone, then leave it claimed by a call that stopped: fresh first, then long ago.
    const [first] = await allDrones(client);
    const { assignment } = await client.getAssignment({ deliveryId: first!.deliveryId });
    await client.releaseAssignment({ deliveryId: assignment!.deliveryId, reason: "test" });
    await leaveClaim(store, assignment!.droneId, "ghost-1", new Date());

    const busy = await rpcError(client.assignDrone(assignRequest("late-1")));
    expect(busy.code).toBe(Code.ResourceExhausted);
    expect((await client.getDrone({ droneId: assignment!.droneId })).drone?.deliveryId).toBe("ghost-1");

    await leaveClaim(store, assignment!.droneId, "ghost-1", new Date(Date.now() - 10 * 60_000));
    const late = await client.assignDrone(assignRequest("late-1"));
    expect(late.assignment?.droneId).toBe(assignment!.droneId);
    expect(late.drone?.deliveryId).toBe("late-1");
  });

  it("reclaims at once a drone still claimed for a delivery whose assignment ended", async () => {
    const { assignment } = await client.getAssignment({ deliveryId: "late-1" });
    // A release that stopped after ending the assignment: the drone stays claimed.
    const stored = await store.getAssignment("late-1");
    await store.updateAssignment(
      create(AssignmentSchema, { ...stored!.value, state: AssignmentState.RELEASED, endTime: timestampFromDate(new Date()) }),
      stored!.revision,
    );
    const next = await client.assignDrone(assignRequest("late-2"));
    expect(next.assignment?.droneId).toBe(assignment!.droneId);
  });

  it("creates only the missing drones when an instance starts with a larger fleet", async () => {
    const before = await allDrones(client);
    const bigger = await startTestService(droneModule, nats.url, {
      env: { DRONE_FLEET_SIZE: String(FLEET + 2), DRONE_MAX_PAYLOADS_KG: "10", DRONE_SPREAD_KM: "0", DRONE_RECLAIM_INTERVAL_MS: "0" },
    });
    try {
      const after = await allDrones(client);
      expect(after).toHaveLength(FLEET + 2);
      expect(after.slice(0, FLEET).map(standing)).toEqual(before.map(standing));
      expect(after.slice(FLEET).map((d) => [d.droneId, d.status])).toEqual([
        ["drone-0006", DroneStatus.AVAILABLE],
        ["drone-0007", DroneStatus.AVAILABLE],
      ]);
    } finally {
      await bigger.stop();
    }
  });

  it("sweeps stale claims in the background and leaves active assignments alone", async () => {
    const active = await allDrones(client, DroneStatus.ASSIGNED);
    const free = (await allDrones(client, DroneStatus.AVAILABLE))[0]!;
    await leaveClaim(store, free.droneId, "ghost-2", new Date(Date.now() - 10 * 60_000));
    const sweeping = await startTestService(droneModule, nats.url, {
      env: { DRONE_FLEET_SIZE: "1", DRONE_RECLAIM_INTERVAL_MS: "20", DRONE_CLAIM_LEASE_MS: "1000" },
    });
    try {
      await vi.waitFor(
        async () => expect((await client.getDrone({ droneId: free.droneId })).drone?.status).toBe(DroneStatus.AVAILABLE),
        { timeout: 10_000, interval: 20 },
      );
      expect((await allDrones(client, DroneStatus.ASSIGNED)).map(standing)).toEqual(active.map(standing));
    } finally {
      await sweeping.stop();
    }
  });
});
