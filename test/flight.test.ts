// Drone flights and the delivery status stream end to end: a request scheduled through Ingestion
// flies, the Delivery service turns the drone's positions into stages, and the status stream,
// GetDeliveryStatus and Watch show them. Flights run at a high time scale so they last seconds.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneStatus, FlightStage } from "../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService } from "../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { IngestionService, ScheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { WorkflowState } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { createClient, type Client } from "../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { decodeMessage } from "../lib/nats/messages.js";
import { STREAMS } from "../lib/nats/streams.js";
import { openWorkflowStore, type WorkflowStore } from "../services/scheduler/workflow-store.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";
import { startPlatform, type TestPlatform } from "./harness/platform.js";

let nats: TestNatsServer;
let nc: NatsConnection;
let js: JetStreamClient;
let platform: TestPlatform;
let workflows: WorkflowStore;
let ingestion: Client<typeof IngestionService>;
let deliveries: Client<typeof DeliveryService>;
let drones: Client<typeof DroneSchedulerService>;

function reconnectClients(): void {
  for (const c of [ingestion, deliveries, drones]) c?.close();
  ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
  deliveries = createClient(DeliveryService, { address: platform.address("delivery") });
  drones = createClient(DroneSchedulerService, { address: platform.address("drone") });
}

/** Schedules a delivery through Ingestion and waits until the workflow created it. */
async function schedule(key: string, dropoff = { latitude: 47.625, longitude: -122.345 }): Promise<string> {
  const { deliveryId } = await ingestion.scheduleDelivery(
    create(ScheduleDeliveryRequestSchema, {
      idempotencyKey: key,
      ownerId: "acct-demo",
      pickup: { latitude: 47.615, longitude: -122.335 },
      dropoff,
      deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
      confirmationRequired: ConfirmationType.NONE,
      packages: [{ packageId: `pkg-${key}`, size: PackageSize.SMALL, weightKg: 1 }],
    }),
  );
  await vi.waitFor(
    async () => {
      if ((await workflows.get(deliveryId))?.value.state !== WorkflowState.SUCCEEDED) throw new Error("not scheduled yet");
    },
    { timeout: 20_000, interval: 50 },
  );
  return deliveryId;
}

/** Every status event of a delivery stored so far, in stream order (read message by message). */
async function statusEvents(deliveryId: string): Promise<DeliveryStatusEvent[]> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(STREAMS.DELIVERY_STATUS.name);
  const subject = `delivery.${deliveryId}.status`;
  const events: DeliveryStatusEvent[] = [];
  for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
    const msg = await jsm.streams.getMessage(STREAMS.DELIVERY_STATUS.name, { seq }).catch(() => undefined);
    if (msg?.subject === subject) events.push(decodeMessage(msg, DeliveryStatusEventSchema));
  }
  return events;
}

async function stagesReach(deliveryId: string, final: DeliveryStage): Promise<DeliveryStage[]> {
  return vi.waitFor(
    async () => {
      const stages = (await statusEvents(deliveryId)).map((e) => e.stage);
      if (!stages.includes(final)) throw new Error(`stages so far: ${stages.map((s) => DeliveryStage[s]).join(", ")}`);
      return stages;
    },
    { timeout: 30_000, interval: 200 },
  );
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connectNats({ url: nats.url, name: "flight-test" });
  js = nc.jetstream();
  platform = await startPlatform(nats.url, {
    env: {
      DRONE_FLEET_SIZE: "6",
      DRONE_MAX_PAYLOADS_KG: "5",
      DRONE_TIME_SCALE: "120",
      DRONE_TELEMETRY_HZ: "5",
      DRONE_SIMULATOR_LEASE_MS: "1000",
      DELIVERY_LOCATION_WRITE_INTERVAL_MS: "200",
      SCHEDULER_RETRY_BASE_MS: "100",
      SCHEDULER_RETRY_MAX_MS: "400",
    },
  });
  workflows = await openWorkflowStore(js);
  reconnectClients();
}, 60_000);

afterAll(async () => {
  for (const c of [ingestion, deliveries, drones]) c?.close();
  await platform?.stop();
  await drainQuietly(nc);
  await nats?.stop();
});

const FLOWN = [
  DeliveryStage.REQUESTED,
  DeliveryStage.CREATED,
  DeliveryStage.HEADED_TO_PICKUP,
  DeliveryStage.HEADED_TO_DROPOFF,
  DeliveryStage.COMPLETED,
];

describe("drone flights and the delivery status stream", () => {
  it("flies a scheduled delivery to Completed, with each stage on the status stream once and in order", async () => {
    const deliveryId = await schedule("fly");
    expect(await stagesReach(deliveryId, DeliveryStage.COMPLETED)).toEqual(FLOWN);
    const { status } = await deliveries.getDeliveryStatus({ deliveryId });
    expect(status?.stage).toBe(DeliveryStage.COMPLETED);
    expect(status?.lastKnownLocation?.latitude).toBeCloseTo(47.625, 6);
    expect(status?.lastKnownLocation?.longitude).toBeCloseTo(-122.345, 6);
    const { events } = await deliveries.getDeliveryHistory({ deliveryId });
    expect(events.map((e) => e.stage)).toEqual(FLOWN);
  });

  it("streams the stages live to a watcher and ends at Completed", async () => {
    // A drop-off 10 km away (a flight of several seconds at this time scale): the watch, sent at
    // once, sees the flight however loaded the machine.
    const deliveryId = await schedule("watch", { latitude: 47.705, longitude: -122.345 });
    const seen: DeliveryStage[] = [];
    let positions = 0;
    for await (const update of deliveries.watchDelivery({ deliveryId, includePositions: true }, { timeoutMs: 30_000 })) {
      if (update.update.case === "statusEvent") seen.push(update.update.value.stage);
      if (update.update.case === "position") positions++;
    }
    expect(seen[seen.length - 1]).toBe(DeliveryStage.COMPLETED);
    expect(seen.filter((s, i) => s !== seen[i - 1])).toEqual(FLOWN.slice(FLOWN.indexOf(seen[0]!)));
    expect(positions).toBeGreaterThan(0);
  });

  it("still completes exactly once when the delivery service restarts mid-flight", async () => {
    const deliveryId = await schedule("restart-delivery");
    await stagesReach(deliveryId, DeliveryStage.HEADED_TO_PICKUP);
    await platform.stopService("delivery");
    await platform.startService("delivery");
    reconnectClients();
    await stagesReach(deliveryId, DeliveryStage.COMPLETED);
    expect((await statusEvents(deliveryId)).map((e) => e.stage)).toEqual(FLOWN);
  });

  it("resumes a flight after the drone service restarts mid-flight", async () => {
    const deliveryId = await schedule("restart-drone");
    await stagesReach(deliveryId, DeliveryStage.HEADED_TO_PICKUP);
    await platform.stopService("drone");
    await platform.startService("drone");
    reconnectClients();
    expect(await stagesReach(deliveryId, DeliveryStage.COMPLETED)).toEqual(FLOWN);
  });

  it("turns the drone home on a cancel mid-flight, and the delivery ends Cancelled", async () => {
    // A drop-off 50 km away: a flight of about half a minute even at 120x, so that the cancellation
    // lands mid-flight however loaded the machine is.
    const deliveryId = await schedule("cancel-flight", { latitude: 48.07, longitude: -122.345 });
    await stagesReach(deliveryId, DeliveryStage.HEADED_TO_PICKUP);
    const { assignment } = await drones.getAssignment({ deliveryId });
    await ingestion.cancelDelivery({ deliveryId, ownerId: "acct-demo", reason: "changed plans" });
    const stages = await stagesReach(deliveryId, DeliveryStage.CANCELLED);
    expect(stages).not.toContain(DeliveryStage.COMPLETED);
    await vi.waitFor(
      async () => {
        const { drone } = await drones.getDrone({ droneId: assignment!.droneId });
        if (drone?.stage !== FlightStage.IDLE || drone.status !== DroneStatus.AVAILABLE) {
          throw new Error(`drone ${FlightStage[drone?.stage ?? 0]} ${DroneStatus[drone?.status ?? 0]}`);
        }
        expect(drone.position?.latitude).toBeCloseTo(drone.homeBase?.latitude ?? 0, 6);
      },
      { timeout: 30_000, interval: 100 },
    );
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    expect(delivery?.stage).toBe(DeliveryStage.CANCELLED);
  });
});
