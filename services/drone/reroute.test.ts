// RerouteAssignment: the re-planned flight, and the drone flying it against a real nats-server
// (fast time scale): before the pickup, with the parcels on board, repeated, and refused.
import { equals } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { AssignmentSchema, AssignmentState, FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createClient, fieldViolations, type Client } from "../../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../../lib/nats/connection.js";
import { STREAMS } from "../../lib/nats/streams.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { rpcError } from "../../test/harness/rpc.js";
import { startTestService } from "../../test/harness/services.js";
import {
  awaitsDropoffCommit,
  deliveryDistanceKm,
  dropoffOf,
  flightDistanceKm,
  isDropoffFixed,
  planDeliveryFlight,
  planReroute,
  positionAt,
  transitionMs,
  transitionOf,
  type FlightTiming,
} from "./flight.js";
import { destination, distanceKm, type LatLon } from "./geo.js";
import { expectIncreasingSequences, isStageChange, recordDrone, type Received } from "./flight-recorder.js";
import { droneModule } from "./module.js";
import { sequenceAt } from "./sequence.js";
import { openDroneStore, type DroneStore } from "./store.js";

type Drones = Client<typeof DroneSchedulerService>;

const HOME: LatLon = { latitude: 47.6062, longitude: -122.3321 };
const STREAM = STREAMS.DRONE_TELEMETRY.name;
const SCALE = 1000;
const ENV = {
  DRONE_FLEET_SIZE: "3",
  DRONE_HOME_BASE: `${HOME.latitude},${HOME.longitude}`,
  DRONE_SPREAD_KM: "0.5",
  DRONE_MAX_PAYLOADS_KG: "10",
  DRONE_SPEED_MPS: "15",
  DRONE_RECLAIM_INTERVAL_MS: "0",
  DRONE_TIME_SCALE: String(SCALE),
  DRONE_TELEMETRY_HZ: "10",
  DRONE_SIMULATOR_LEASE_MS: "1000",
};

const location = (p: LatLon) => ({ latitude: p.latitude, longitude: p.longitude, altitude: 0 });

// -------------------------------------------------------------------------------------------------
// The plan

describe("rerouted flight plan", () => {
  const timing: FlightTiming = { timeScale: 10, pickupSeconds: 30, dropoffSeconds: 20, tickMs: 1000 };
  const pickup = destination(HOME, 0, 3);
  const dropoff = destination(pickup, 90, 6);
  const moved = destination(pickup, 180, 1);
  const flight = planDeliveryFlight({ number: 4, deliveryId: "d-1", from: HOME, pickup, dropoff, home: HOME, speedMps: 15, startMs: 1_000_000, sequenceBase: 30 }, timing);
  const at = (stage: FlightStage) => transitionMs(flight, transitionOf(flight, stage)!);
  const reroute = (startMs: number) => planReroute(flight, { number: 5, startMs, dropoff: moved, sequenceBase: 99 }, timing);

  it("before the pickup: from where the drone is to the same pickup, then to the new drop-off and home", () => {
    const startMs = (at(FlightStage.HEADED_TO_PICKUP) + at(FlightStage.PICKING_UP)) / 2;
    const next = reroute(startMs)!;
    expect(next).toMatchObject({ number: 5, deliveryId: "d-1", sequenceBase: 99, applied: -1 });
    expect(next.legs.map((l) => l.stage)).toEqual([
      FlightStage.HEADED_TO_PICKUP,
      FlightStage.PICKING_UP,
      FlightStage.HEADED_TO_DROPOFF,
      FlightStage.DROPPING_OFF,
      FlightStage.RETURNING,
    ]);
    expect(distanceKm(next.legs[0]!.from, positionAt(flight, startMs))).toBeLessThan(1e-9);
    expect(next.legs[1]!.from).toEqual(flight.legs[1]!.from);
    expect(Math.abs(next.legs[1]!.startMs - at(FlightStage.PICKING_UP))).toBeLessThanOrEqual(2); // same arrival, to the rounding
    expect(next.legs[1]!.endMs - next.legs[1]!.startMs).toBe(3_000);
    expect(dropoffOf(next)).toEqual(moved);
    expect(next.legs[4]!.to).toEqual(flight.legs[4]!.to);
    // The whole delivery's distance: the part flown before the reroute plus the new plan.
    expect(deliveryDistanceKm(next)).toBeCloseTo(distanceKm(HOME, pickup) + distanceKm(pickup, moved) + distanceKm(moved, HOME), 6);
  });

  it("while loading: the rest of the loading, then the new drop-off", () => {
    const next = reroute(at(FlightStage.PICKING_UP) + 1_000)!;
    expect(next.legs.map((l) => l.stage)).toEqual([FlightStage.PICKING_UP, FlightStage.HEADED_TO_DROPOFF, FlightStage.DROPPING_OFF, FlightStage.RETURNING]);
    expect(next.legs[0]!.endMs).toBe(at(FlightStage.HEADED_TO_DROPOFF));
  });

  it("with the parcels on board: from where the drone is straight to the new drop-off", () => {
    const startMs = (at(FlightStage.HEADED_TO_DROPOFF) + at(FlightStage.DROPPING_OFF)) / 2;
    const next = reroute(startMs)!;
    expect(next.legs.map((l) => l.stage)).toEqual([FlightStage.HEADED_TO_DROPOFF, FlightStage.DROPPING_OFF, FlightStage.RETURNING]);
    const here = positionAt(flight, startMs);
    expect(distanceKm(next.legs[0]!.from, here)).toBeLessThan(1e-9);
    expect(next.priorKm).toBeCloseTo(distanceKm(HOME, pickup) + distanceKm(pickup, here), 6);
    expect(deliveryDistanceKm(next)).toBeCloseTo(next.priorKm! + flightDistanceKm(next), 9);
  });

  it("not once the drop-off is due, committed or applied", () => {
    const dropMs = at(FlightStage.DROPPING_OFF);
    expect(isDropoffFixed(flight, dropMs - 1)).toBe(false);
    expect(awaitsDropoffCommit(flight, dropMs - 1)).toBe(false);
    expect(reroute(dropMs)).toBeUndefined();
    expect(awaitsDropoffCommit(flight, dropMs)).toBe(true);
    expect(planReroute({ ...flight, dropoffCommitted: true }, { number: 5, startMs: dropMs - 1, dropoff: moved, sequenceBase: 0 }, timing)).toBeUndefined();
    expect(awaitsDropoffCommit({ ...flight, dropoffCommitted: true }, dropMs)).toBe(false);
    expect(planReroute({ ...flight, applied: 3 }, { number: 5, startMs: dropMs - 1, dropoff: moved, sequenceBase: 0 }, timing)).toBeUndefined();
  });
});

// -------------------------------------------------------------------------------------------------
// Flying, against a real nats-server

/** The stage changes (message id `<droneId>:<flight>:<STAGE>`), as `<flight>:<STAGE>`, in stream order. */
const stageChanges = (received: readonly Received[]) =>
  received.filter(isStageChange).map((r) => ({ id: r.msgId.split(":").slice(1).join(":"), event: r.event }));

describe("RerouteAssignment", () => {
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
    service = await startTestService(droneModule, nats.url, { env: ENV });
    client = createClient(DroneSchedulerService, { address: service.address });
    nc = await connectNats({ url: nats.url, name: "reroute-test" });
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

  async function assign(pickup: LatLon, dropoff: LatLon) {
    const deliveryId = `reroute-${++deliveries}`;
    const from = (await jsm.streams.info(STREAM)).state.last_seq + 1;
    const answer = await client.assignDrone({
      deliveryId,
      ownerId: "acct-reroute",
      pickup: location(pickup),
      dropoff: location(dropoff),
      packages: [{ packageId: `${deliveryId}-p`, size: PackageSize.SMALL, weightKg: 1 }],
    });
    const droneId = answer.assignment!.droneId;
    const flight = (await store.getDrone(droneId))!.value.flight!;
    const startedFrom = flight.legs[0]!.from;
    return { deliveryId, droneId, answer, flightNumber: flight.number, startedFrom, recorder: await recordDrone(js, droneId, from) };
  }

  const dropoffEvent = (received: readonly Received[]) => received.find((r) => r.event.stage === FlightStage.DROPPING_OFF);

  /**
   * The events of the drone up to its drop-off. The drop-off dwell lasts 30 ms at this scale, so on
   * a busy machine the way home may have begun before the recorder stops: its events are left out.
   */
  async function droppedOff(recorder: { received: Received[]; stop(): Promise<void> }): Promise<Received[]> {
    await vi.waitFor(() => expect(dropoffEvent(recorder.received)).toBeDefined(), { timeout: 20_000, interval: 20 });
    await recorder.stop();
    const received = recorder.received;
    return received.slice(0, received.indexOf(dropoffEvent(received)!) + 1);
  }

  async function completed(deliveryId: string) {
    await vi.waitFor(async () => expect((await client.getAssignment({ deliveryId })).assignment?.state).toBe(AssignmentState.COMPLETED), {
      timeout: 10_000,
      interval: 20,
    });
    return (await client.getAssignment({ deliveryId })).assignment!;
  }

  it("before the pickup: the drone picks up as planned and drops off at the new place; a repeat changes nothing", async () => {
    // A pickup 60 km away (4 s at this scale): the reroute comes long before the drone gets there.
    const pickup = destination(HOME, 0, 60);
    const oldDropoff = destination(pickup, 90, 5);
    const newDropoff = destination(HOME, 0, 57);
    const { deliveryId, droneId, answer, flightNumber, startedFrom, recorder } = await assign(pickup, oldDropoff);
    const before = answer.assignment!;

    const { assignment } = await client.rerouteAssignment({ deliveryId, dropoff: location(newDropoff) });
    expect(assignment).toMatchObject({ deliveryId, droneId, state: AssignmentState.ACTIVE, dropoff: location(newDropoff) });
    expect(Math.abs(timestampMs(assignment!.pickupEta!) - timestampMs(before.pickupEta!))).toBeLessThanOrEqual(2);
    // Pickup -> new drop-off is 3 km instead of 5: 2 km less at 15 m/s, at the time scale.
    expect(timestampMs(before.dropoffEta!) - timestampMs(assignment!.dropoffEta!)).toBeCloseTo((distanceKm(pickup, oldDropoff) - distanceKm(pickup, newDropoff)) * 1e6 / 15 / SCALE, -1);
    expect(assignment!.plannedDistanceKm).toBeCloseTo(distanceKm(startedFrom, pickup) + distanceKm(pickup, newDropoff) + distanceKm(newDropoff, answer.drone!.homeBase!), 1);
    expect((await client.getAssignment({ deliveryId })).assignment).toEqual(assignment);
    const rerouted = (await store.getDrone(droneId))!.value.flight!;
    expect(rerouted.number).toBe(flightNumber + 1);

    // The same reroute again: same answer, same flight.
    const again = await client.rerouteAssignment({ deliveryId, dropoff: location(newDropoff) });
    expect(equals(AssignmentSchema, again.assignment!, assignment!)).toBe(true);
    expect((await store.getDrone(droneId))!.value.flight!.number).toBe(flightNumber + 1);

    const received = await droppedOff(recorder);
    expect(stageChanges(received).map((c) => c.id)).toEqual([
      `${flightNumber}:HEADED_TO_PICKUP`,
      `${flightNumber + 1}:HEADED_TO_PICKUP`,
      `${flightNumber + 1}:PICKING_UP`,
      `${flightNumber + 1}:HEADED_TO_DROPOFF`,
      `${flightNumber + 1}:DROPPING_OFF`,
    ]);
    expectIncreasingSequences(received);
    expect(received[1]!.event.sequence).toBeGreaterThan(0n);
    for (const { event } of received) expect(event.deliveryId).toBe(deliveryId);
    // Dropped where the drone went, with the ETA it announced.
    const drop = dropoffEvent(received)!.event;
    expect(distanceKm(drop.position!, newDropoff)).toBeLessThan(1e-6);
    expect(drop.dropoffEta).toEqual(assignment!.dropoffEta);
    const onNewPlan = received.filter((r) => r.event.sequence > BigInt(rerouted.sequenceBase));
    for (const { event } of onNewPlan) expect(event.dropoffEta).toEqual(assignment!.dropoffEta);
    // The pickup ETA rides along until the parcels are on board.
    for (const { event } of onNewPlan) {
      if (event.stage === FlightStage.HEADED_TO_PICKUP) expect(event.pickupEta).toEqual(assignment!.pickupEta);
      if (event.stage === FlightStage.HEADED_TO_DROPOFF) expect(event.pickupEta).toBeUndefined();
    }

    const done = await completed(deliveryId);
    expect(done.dropoff).toMatchObject(location(newDropoff));
    expect(timestampMs(done.endTime!)).toBe(timestampMs(drop.eventTime!));

    // Once dropped off: the same reroute still answers the assignment; another one is refused.
    expect(equals(AssignmentSchema, (await client.rerouteAssignment({ deliveryId, dropoff: location(newDropoff) })).assignment!, done)).toBe(true);
    const refused = await rpcError(client.rerouteAssignment({ deliveryId, dropoff: location(oldDropoff) }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.findDetails(PreconditionFailureSchema)[0]?.violations).toEqual([
      expect.objectContaining({ type: "DROPPED_OFF", subject: `delivery:${deliveryId}`, description: "the parcels were already dropped off" }),
    ]);
    expect((await client.getAssignment({ deliveryId })).assignment).toEqual(done);
  });

  it("with the parcels on board: the drone turns from where it is straight to the new drop-off", async () => {
    // Picked up 1 km from home, then 60 km to the drop-off (4 s at this scale).
    const pickup = destination(HOME, 90, 1);
    const oldDropoff = destination(pickup, 90, 60);
    const newDropoff = destination(pickup, 0, 3);
    const { deliveryId, droneId, answer, flightNumber, startedFrom, recorder } = await assign(pickup, oldDropoff);
    await vi.waitFor(async () => expect((await client.getDrone({ droneId })).drone?.stage).toBe(FlightStage.HEADED_TO_DROPOFF), {
      timeout: 10_000,
      interval: 10,
    });
    const old = (await store.getDrone(droneId))!.value.flight!;

    const { assignment } = await client.rerouteAssignment({ deliveryId, dropoff: location(newDropoff) });
    expect(assignment?.dropoff).toMatchObject(location(newDropoff));
    expect(assignment?.pickupEta).toEqual(answer.assignment!.pickupEta);
    const rerouted = (await store.getDrone(droneId))!.value.flight!;
    expect(rerouted.number).toBe(flightNumber + 1);
    expect(rerouted.sequenceBase).toBeGreaterThanOrEqual(sequenceAt(old, rerouted.legs[0]!.startMs));

    const received = await droppedOff(recorder);
    const changes = stageChanges(received);
    expect(changes.map((c) => c.id)).toEqual([
      `${flightNumber}:HEADED_TO_PICKUP`,
      `${flightNumber}:PICKING_UP`,
      `${flightNumber}:HEADED_TO_DROPOFF`,
      `${flightNumber + 1}:HEADED_TO_DROPOFF`,
      `${flightNumber + 1}:DROPPING_OFF`,
    ]);
    expectIncreasingSequences(received);
    // Turned on the way from the pickup to the old drop-off, and dropped at the new one.
    const turned = changes[3]!.event.position!;
    expect(distanceKm(pickup, turned) + distanceKm(turned, oldDropoff)).toBeCloseTo(distanceKm(pickup, oldDropoff), 3);
    const drop = changes[4]!.event;
    expect(distanceKm(drop.position!, newDropoff)).toBeLessThan(1e-6);
    expect(drop.dropoffEta).toEqual(assignment!.dropoffEta);
    // No event ever placed the drone at the old drop-off.
    for (const { event } of received) expect(distanceKm(event.position!, oldDropoff)).toBeGreaterThan(1);
    const done = await completed(deliveryId);
    expect(done.plannedDistanceKm).toBeCloseTo(
      distanceKm(startedFrom, pickup) + distanceKm(pickup, turned) + distanceKm(turned, newDropoff) + distanceKm(newDropoff, answer.drone!.homeBase!),
      1,
    );
  });

  it("changes nothing when the drone already flies to the drop-off", async () => {
    const pickup = destination(HOME, 200, 60);
    const dropoff = destination(pickup, 200, 2);
    const { deliveryId, droneId, answer, flightNumber, recorder } = await assign(pickup, dropoff);
    await recorder.stop();
    const same = await client.rerouteAssignment({ deliveryId, dropoff: location(dropoff) });
    expect(equals(AssignmentSchema, same.assignment!, answer.assignment!)).toBe(true);
    expect((await store.getDrone(droneId))!.value.flight!.number).toBe(flightNumber);
    await client.releaseAssignment({ deliveryId, reason: "test over" });
  });

  it("answers NOT_FOUND, INVALID_ARGUMENT, and FAILED_PRECONDITION for a released assignment", async () => {
    expect((await rpcError(client.rerouteAssignment({ deliveryId: "never-assigned", dropoff: location(HOME) }))).code).toBe(Code.NotFound);

    const bad = await rpcError(client.rerouteAssignment({ deliveryId: "has.dot", dropoff: { latitude: 91, longitude: 0, altitude: 0 } }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual(["delivery_id", "dropoff.latitude"]);
    const missing = await rpcError(client.rerouteAssignment({ deliveryId: "reroute-x" }));
    expect(fieldViolations(missing).map((v) => v.field)).toEqual(["dropoff"]);

    const pickup = destination(HOME, 270, 60);
    const { deliveryId, recorder } = await assign(pickup, destination(pickup, 0, 2));
    await recorder.stop();
    expect((await client.releaseAssignment({ deliveryId, reason: "cancelled" })).released).toBe(true);
    const refused = await rpcError(client.rerouteAssignment({ deliveryId, dropoff: location(destination(pickup, 0, 3)) }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.findDetails(PreconditionFailureSchema)[0]?.violations).toEqual([
      expect.objectContaining({ type: "RELEASED", subject: `delivery:${deliveryId}` }),
    ]);
  });
});
