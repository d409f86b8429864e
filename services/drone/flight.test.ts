// Drone flights: the plan and its event numbering, and the simulator flying drones against a real
// nats-server (fast time scale), across releases, restarts and two instances.
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { AssignmentState, DroneSchema, DroneStatus, FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { createClient, type Client } from "../../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../../lib/nats/connection.js";
import { STREAMS } from "../../lib/nats/streams.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { decodeDroneRecord, droneAt, encodeDroneRecord, isFlying } from "./drone-record.js";
import { expectIncreasingSequences, isStageChange, recordDrone, type Received } from "./flight-recorder.js";
import { planDeliveryFlight, stageAt, transitionMs, transitionOf, type Flight, type FlightTiming } from "./flight.js";
import { destination, distanceKm, type LatLon } from "./geo.js";
import { LeaderLease } from "./leader-lease.js";
import { droneModule } from "./module.js";
import { hasTick, nextSequenceBase, sequenceAt, tickSequence, transitionSequence } from "./sequence.js";
import { LEADER_KEY, openDroneStore, type DroneStore } from "./store.js";

type Drones = Client<typeof DroneSchedulerService>;

const HOME: LatLon = { latitude: 47.6062, longitude: -122.3321 };
const STREAM = STREAMS.DRONE_TELEMETRY.name;
const SCALE = 2000;
const FLIGHT_ENV = {
  DRONE_FLEET_SIZE: "4",
  DRONE_HOME_BASE: `${HOME.latitude},${HOME.longitude}`,
  DRONE_SPREAD_KM: "1",
  DRONE_MAX_PAYLOADS_KG: "10",
  DRONE_SPEED_MPS: "15",
  DRONE_RECLAIM_INTERVAL_MS: "0",
  DRONE_TIME_SCALE: String(SCALE),
  DRONE_TELEMETRY_HZ: "10",
  DRONE_SIMULATOR_LEASE_MS: "1000",
};
const STAGES_IN_ORDER = [
  FlightStage.HEADED_TO_PICKUP,
  FlightStage.PICKING_UP,
  FlightStage.HEADED_TO_DROPOFF,
  FlightStage.DROPPING_OFF,
  FlightStage.RETURNING,
  FlightStage.IDLE,
];

const location = (p: LatLon) => ({ latitude: p.latitude, longitude: p.longitude, altitude: 0 });

// -------------------------------------------------------------------------------------------------
// The plan and its numbering

describe("flight plan", () => {
  const timing: FlightTiming = { timeScale: 10, pickupSeconds: 30, dropoffSeconds: 20, tickMs: 1000 };
  const pickup = destination(HOME, 0, 3);
  const dropoff = destination(pickup, 90, 6);

  function plan(startMs: number, from: LatLon = HOME, sequenceBase = 0): Flight {
    return planDeliveryFlight({ number: 1, deliveryId: "d-1", from, pickup, dropoff, home: HOME, speedMps: 15, startMs, sequenceBase }, timing);
  }

  it("divides every duration by the time scale and follows the stages in order", () => {
    const flight = plan(1_000_000);
    expect(flight.legs.map((l) => l.stage)).toEqual(STAGES_IN_ORDER.slice(0, 5));
    const toPickupMs = (distanceKm(HOME, pickup) * 1e6) / 15 / 10;
    expect(transitionMs(flight, 1) - 1_000_000).toBeCloseTo(toPickupMs, -1);
    expect(transitionMs(flight, 2) - transitionMs(flight, 1)).toBe(3_000); // 30 s / 10
    expect(transitionMs(flight, 4) - transitionMs(flight, 3)).toBe(2_000); // 20 s / 10
    expect(stageAt(flight, transitionMs(flight, 2) + 1)).toBe(FlightStage.HEADED_TO_DROPOFF);
    expect(stageAt(flight, transitionMs(flight, 5))).toBe(FlightStage.IDLE);
    expect(transitionOf(flight, FlightStage.DROPPING_OFF)).toBe(3);
  });

  it("numbers every event of a flight by its rank in time, transitions before ticks of the same instant", () => {
    // Start on a boundary, and a zero-length first leg (already at the pickup): ties everywhere.
    for (const [startMs, from] of [
      [1_000_000, HOME],
      [1_000_437, HOME],
      [2_000_000, pickup],
    ] as const) {
      const flight = plan(startMs, from, 41);
      type Ev = { atMs: number; order: number; sequence: number };
      const events: Ev[] = [];
      for (let i = 0; i <= flight.legs.length; i++) events.push({ atMs: transitionMs(flight, i), order: 0, sequence: transitionSequence(flight, i) });
      const last = transitionMs(flight, flight.legs.length);
      for (let k = Math.floor(startMs / 1000) - 2; k * 1000 <= last + 2000; k++) {
        if (hasTick(flight, k)) events.push({ atMs: k * 1000, order: 1, sequence: tickSequence(flight, k) });
      }
      events.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
      expect(events.map((e) => e.sequence)).toEqual(events.map((_, n) => 42 + n));
      // sequenceAt counts the events up to an instant.
      for (const e of events) expect(sequenceAt(flight, e.atMs)).toBeGreaterThanOrEqual(e.sequence);
      expect(sequenceAt(flight, last + 60_000)).toBe(41 + events.length);
      expect(sequenceAt(flight, startMs - 1)).toBe(41);
      // The next flight continues above anything this one may still publish.
      expect(nextSequenceBase(flight, last)).toBe(41 + events.length);
      expect(nextSequenceBase(undefined, last)).toBe(0);
    }
  });
});

describe("drone record", () => {
  it("stores the drone with its flight, and reads a bare binary drone as one without a flight", () => {
    const drone = create(DroneSchema, {
      droneId: "drone-0001",
      status: DroneStatus.ASSIGNED,
      stage: FlightStage.HEADED_TO_PICKUP,
      position: location(HOME),
      homeBase: location(HOME),
      maxPayloadKg: 2.5,
      speedMps: 15,
      batteryPercent: 100,
      deliveryId: "d-1",
      updateTime: timestampFromMs(1_700_000_000_123),
    });
    const timing: FlightTiming = { timeScale: 1, pickupSeconds: 30, dropoffSeconds: 30, tickMs: 1000 };
    const pickup = destination(HOME, 0, 3);
    const flight = planDeliveryFlight(
      { number: 3, deliveryId: "d-1", from: HOME, pickup, dropoff: destination(pickup, 90, 2), home: HOME, speedMps: 15, startMs: 1_700_000_000_000, sequenceBase: 17 },
      timing,
    );
    const decoded = decodeDroneRecord(encodeDroneRecord({ drone, flight }));
    expect(equals(DroneSchema, decoded.drone, drone)).toBe(true);
    expect(decoded.flight).toEqual(flight);
    expect(decodeDroneRecord(toBinary(DroneSchema, drone))).toEqual({ drone, flight: undefined });
    // Callers see where the plan puts the drone at the moment asked.
    const halfway = droneAt(decoded, (transitionMs(flight, 0) + transitionMs(flight, 1)) / 2);
    expect(halfway.stage).toBe(FlightStage.HEADED_TO_PICKUP);
    expect(distanceKm(halfway.position!, HOME)).toBeCloseTo(1.5, 3);
  });
});

// -------------------------------------------------------------------------------------------------
// Flying, against a real nats-server

/** The stage-change events (message id `<droneId>:<flight>:<STAGE>`), in stream order. */
const stageChanges = (received: readonly Received[]) => received.filter(isStageChange);

/** The stages the drone went through, each run of equal stages counted once. */
function stageRuns(received: readonly Received[]): FlightStage[] {
  const runs: FlightStage[] = [];
  for (const { event } of received) if (runs.at(-1) !== event.stage) runs.push(event.stage);
  return runs;
}

describe("drone flights", () => {
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let store: DroneStore;
  let service: RunningService;
  let client: Drones;
  let deliveries = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    service = await startTestService(droneModule, nats.url, { env: FLIGHT_ENV });
    client = createClient(DroneSchedulerService, { address: service.address });
    nc = await connectNats({ url: nats.url, name: "flight-test" });
    js = nc.jetstream();
    jsm = await nc.jetstreamManager();
    store = await openDroneStore(js);
  });

  afterAll(async () => {
    client?.close();
    await service?.stop();
    await drainQuietly(nc);
    await nats?.stop();
  });

  /** Every drone back home with its last flight published and stored. */
  async function settled(): Promise<void> {
    await vi.waitFor(async () => expect((await store.fleet()).filter((d) => isFlying(d.value)).map((d) => d.value.drone.droneId)).toEqual([]), {
      timeout: 15_000,
      interval: 20,
    });
  }

  beforeEach(settled);

  const nextStreamSeq = async (): Promise<number> => (await jsm.streams.info(STREAM)).state.last_seq + 1;

  async function assign(target: Drones, pickup: LatLon, dropoff: LatLon) {
    const deliveryId = `flight-${++deliveries}`;
    const from = await nextStreamSeq();
    const answer = await target.assignDrone({
      deliveryId,
      ownerId: "acct-flights",
      pickup: location(pickup),
      dropoff: location(dropoff),
      packages: [{ packageId: `${deliveryId}-p`, size: PackageSize.SMALL, weightKg: 1 }],
    });
    const droneId = answer.assignment!.droneId;
    return { deliveryId, droneId, answer, recorder: await recordDrone(js, droneId, from) };
  }

  const endsIdle = (received: readonly Received[]) => expect(received.at(-1)?.event.stage).toBe(FlightStage.IDLE);

  it("flies an assigned drone home -> pickup -> drop-off -> home, publishing each stage change once", async () => {
    const pickup = destination(HOME, 0, 3);
    const dropoff = destination(pickup, 90, 10);
    const { deliveryId, droneId, answer, recorder } = await assign(client, pickup, dropoff);
    const home = answer.drone!.homeBase!;

    // The ETAs follow the plan at the time scale: the first leg at 15 m/s, divided by 2000.
    const assignedAt = timestampMs(answer.assignment!.assignTime!);
    const startedFrom = distanceKm(home, pickup);
    expect(timestampMs(answer.assignment!.pickupEta!) - assignedAt).toBeCloseTo((startedFrom * 1e6) / 15 / SCALE, -1);

    await vi.waitFor(() => endsIdle(recorder.received), { timeout: 10_000, interval: 20 });
    await recorder.stop();
    const { received } = recorder;
    expect(recorder.badTypes).toEqual([]);

    expect(stageRuns(received)).toEqual(STAGES_IN_ORDER);
    const changes = stageChanges(received);
    expect(changes.map((r) => r.event.stage)).toEqual(STAGES_IN_ORDER);
    expect(changes.map((r) => r.msgId)).toEqual(STAGES_IN_ORDER.map((s) => `${droneId}:1:${FlightStage[s]}`));
    expectIncreasingSequences(received);
    expect(received[0]!.event.sequence).toBe(1n);

    // Every event of the delivery flight names the delivery, home included.
    for (const { event } of received) expect(event).toMatchObject({ droneId, deliveryId });

    // From the pickup towards the drop-off: every position on that leg nearer to the drop-off.
    const byStage = (stage: FlightStage) => received.filter((r) => r.event.stage === stage).map((r) => r.event);
    const toDropoff = byStage(FlightStage.HEADED_TO_DROPOFF).map((e) => distanceKm(e.position!, dropoff));
    expect(toDropoff[0]).toBeCloseTo(distanceKm(pickup, dropoff), 6);
    for (let i = 1; i < toDropoff.length; i++) expect(toDropoff[i]!).toBeLessThanOrEqual(toDropoff[i - 1]!);
    expect(distanceKm(byStage(FlightStage.PICKING_UP)[0]!.position!, pickup)).toBeLessThan(1e-6);
    expect(distanceKm(byStage(FlightStage.DROPPING_OFF)[0]!.position!, dropoff)).toBeLessThan(1e-6);
    expect(distanceKm(byStage(FlightStage.IDLE)[0]!.position!, home)).toBeLessThan(1e-6);
    expect(byStage(FlightStage.HEADED_TO_DROPOFF)[0]!.speedMps).toBe(15);
    expect(byStage(FlightStage.PICKING_UP)[0]!.speedMps).toBe(0);
    expect(byStage(FlightStage.HEADED_TO_DROPOFF)[0]!.position?.altitude).toBe(60);
    expect(byStage(FlightStage.DROPPING_OFF)[0]!.position?.altitude).toBe(0);

    // The delivery completed at the drop-off; the drone is free and home.
    const { assignment } = await client.getAssignment({ deliveryId });
    expect(assignment?.state).toBe(AssignmentState.COMPLETED);
    expect(timestampMs(assignment!.endTime!)).toBe(timestampMs(byStage(FlightStage.DROPPING_OFF)[0]!.eventTime!));
    const { drone } = await client.getDrone({ droneId });
    expect(drone).toMatchObject({ status: DroneStatus.AVAILABLE, deliveryId: "", stage: FlightStage.IDLE, position: home });
    const month = new Date(assignedAt);
    const usage = await client.getUtilization({ ownerId: "acct-flights", month: { year: month.getUTCFullYear(), month: month.getUTCMonth() + 1 } });
    expect(usage.completedCount).toBe(1n);
  });

  it("turns a drone home when its assignment is released mid-flight", async () => {
    // A pickup 50 km away: the drone is still on its way there when the release comes.
    const pickup = destination(HOME, 180, 50);
    const { deliveryId, droneId, answer, recorder } = await assign(client, pickup, destination(pickup, 90, 2));
    const home = answer.drone!.homeBase!;
    const released = await client.releaseAssignment({ deliveryId, reason: "cancelled by the customer" });
    expect(released.released).toBe(true);
    expect((await client.getDrone({ droneId })).drone).toMatchObject({ status: DroneStatus.AVAILABLE, deliveryId: "" });

    await vi.waitFor(() => endsIdle(recorder.received), { timeout: 10_000, interval: 20 });
    await recorder.stop();
    const { received } = recorder;
    expect(stageRuns(received)).toEqual([FlightStage.HEADED_TO_PICKUP, FlightStage.RETURNING, FlightStage.IDLE]);
    const changes = stageChanges(received);
    const flight = Number(changes[0]!.msgId!.split(":")[1]);
    expect(changes.map((r) => r.msgId)).toEqual([
      `${droneId}:${flight}:HEADED_TO_PICKUP`,
      `${droneId}:${flight + 1}:RETURNING`,
      `${droneId}:${flight + 1}:IDLE`,
    ]);
    expectIncreasingSequences(received);
    // Flying home empty, from where it was when released (on the way to the pickup).
    const turned = changes[1]!.event;
    expect(turned.deliveryId).toBe("");
    expect(distanceKm(turned.position!, home) + distanceKm(turned.position!, pickup)).toBeCloseTo(distanceKm(home, pickup), 3);
    expect(distanceKm(changes[2]!.event.position!, home)).toBeLessThan(1e-6);

    expect((await client.getAssignment({ deliveryId })).assignment).toMatchObject({
      state: AssignmentState.RELEASED,
      releaseReason: "cancelled by the customer",
    });
    await vi.waitFor(async () => expect((await client.getDrone({ droneId })).drone).toMatchObject({ stage: FlightStage.IDLE, position: home }), {
      timeout: 5_000,
      interval: 20,
    });
    // An idle drone at home stays there when an ended assignment is released again.
    expect((await client.releaseAssignment({ deliveryId })).released).toBe(false);
    expect((await store.getDrone(droneId))?.value.flight?.number).toBe(flight + 1);
  });

  it("resumes a flight after a restart, publishing the stage changes it missed", async () => {
    const pickup = destination(HOME, 270, 8);
    const dropoff = destination(pickup, 0, 8);
    const { deliveryId, droneId, recorder } = await assign(client, pickup, dropoff);

    const port = service.port;
    client.close();
    await service.stop();
    // While no instance runs, the flight goes on by its plan: past the pickup, nothing published.
    await vi.waitFor(
      async () => {
        const flight = (await store.getDrone(droneId))!.value.flight!;
        expect(transitionMs(flight, transitionOf(flight, FlightStage.HEADED_TO_DROPOFF)!)).toBeLessThanOrEqual(Date.now());
      },
      { timeout: 10_000, interval: 10 },
    );
    service = await startTestService(droneModule, nats.url, { port, env: FLIGHT_ENV });
    client = createClient(DroneSchedulerService, { address: service.address });

    await vi.waitFor(() => endsIdle(recorder.received), { timeout: 10_000, interval: 20 });
    await recorder.stop();
    const { received } = recorder;
    expect(stageChanges(received).map((r) => r.event.stage)).toEqual(STAGES_IN_ORDER);
    expect(stageRuns(received)).toEqual(STAGES_IN_ORDER);
    expectIncreasingSequences(received);
    expect((await client.getAssignment({ deliveryId })).assignment?.state).toBe(AssignmentState.COMPLETED);
    expect((await client.getDrone({ droneId })).drone).toMatchObject({ status: DroneStatus.AVAILABLE, stage: FlightStage.IDLE });
  });

  it("flies with one instance of two: each stage change published once, and the other takes over", async () => {
    const second = await startTestService(droneModule, nats.url, { env: FLIGHT_ENV });
    const secondClient = createClient(DroneSchedulerService, { address: second.address });
    try {
      const holder = async () => JSON.parse(new TextDecoder().decode((await store.kv.get(LEADER_KEY))!.value)) as { instance: string };
      const first = await holder();

      // Assigned through the standby: the leader learns of it through the bucket.
      const pickup = destination(HOME, 45, 6);
      const dropoff = destination(pickup, 45, 6);
      const one = await assign(secondClient, pickup, dropoff);
      await vi.waitFor(() => endsIdle(one.recorder.received), { timeout: 10_000, interval: 20 });
      await one.recorder.stop();
      expect(stageChanges(one.recorder.received).map((r) => r.event.stage)).toEqual(STAGES_IN_ORDER);
      expectIncreasingSequences(one.recorder.received);
      expect((await holder()).instance).toBe(first.instance);

      // The leader stops in the middle of a flight: the standby takes over and finishes it.
      const two = await assign(secondClient, destination(HOME, 135, 10), destination(HOME, 135, 20));
      const port = service.port;
      client.close();
      await service.stop();
      await vi.waitFor(() => endsIdle(two.recorder.received), { timeout: 10_000, interval: 20 });
      await two.recorder.stop();
      expect(stageChanges(two.recorder.received).map((r) => r.event.stage)).toEqual(STAGES_IN_ORDER);
      expectIncreasingSequences(two.recorder.received);
      expect((await holder()).instance).not.toBe(first.instance);
      expect((await secondClient.getAssignment({ deliveryId: two.deliveryId })).assignment?.state).toBe(AssignmentState.COMPLETED);

      service = await startTestService(droneModule, nats.url, { port, env: FLIGHT_ENV });
      client = createClient(DroneSchedulerService, { address: service.address });
    } finally {
      secondClient.close();
      await second.stop();
    }
  });
});

describe("simulator lease", () => {
  let nats: TestNatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url, name: "lease-test" });
  });

  afterAll(async () => {
    await drainQuietly(nc);
    await nats?.stop();
  });

  it("is held by exactly one of several instances, and passes on when the holder stops", async () => {
    const { kv } = await openDroneStore(nc.jetstream());
    const leading = new Set<string>();
    const leases = ["a", "b", "c"].map(
      (instanceId) =>
        new LeaderLease({
          kv,
          key: LEADER_KEY,
          instanceId,
          leaseMs: 400,
          now: () => Date.now(),
          log: pino({ level: "silent" }),
          onLead: () => leading.add(instanceId),
          onFollow: () => leading.delete(instanceId),
        }),
    );
    for (const lease of leases) lease.start();
    try {
      await vi.waitFor(() => expect(leading.size).toBe(1), { timeout: 5_000, interval: 10 });
      const [holder] = [...leading];
      const holderLease = leases[["a", "b", "c"].indexOf(holder!)]!;
      expect(leases.filter((l) => l.isLeader())).toEqual([holderLease]);

      await holderLease.stop();
      await vi.waitFor(
        () => {
          expect(leading.size).toBe(1);
          expect(leading.has(holder!)).toBe(false);
        },
        { timeout: 5_000, interval: 10 },
      );
      expect(leases.filter((l) => l.isLeader())).toHaveLength(1);
    } finally {
      for (const lease of leases) await lease.stop();
    }
  });
});
