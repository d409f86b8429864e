// The whole platform on a nats-server that requires credentials: every service connects as its own
// identity with the permissions of permissions.ts, and a delivery is scheduled, flown, watched and
// (for a suspended account) compensated without a single permission violation.
// The service host (lib/service/service-host.ts) connects with the identity's credentials from
// the environment it is given (`nats.serviceEnv`).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import {
  IngestionService,
  ScheduleDeliveryRequestSchema,
  type ScheduleDeliveryRequest,
} from "../../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { WorkflowState } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { createClient, type Client } from "../grpc/index.js";
import { openCompensationStore, type CompensationStore } from "../../services/supervisor/compensation-store.js";
import { openWorkflowStore, type WorkflowStore } from "../../services/scheduler/workflow-store.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startPlatform, type TestPlatform } from "../../test/harness/platform.js";
import { drainQuietly } from "./connection.js";
import { SERVICE_NATS_IDENTITIES } from "./permissions.js";
import { ensureStreams } from "./streams.js";

let nats: TestNatsServer;
let admin: NatsConnection;
let platform: TestPlatform;
let workflows: WorkflowStore;
let compensations: CompensationStore;
let ingestion: Client<typeof IngestionService>;
let deliveries: Client<typeof DeliveryService>;

function request(key: string, ownerId = "acct-demo", dropoff = { latitude: 47.625, longitude: -122.345 }): ScheduleDeliveryRequest {
  return create(ScheduleDeliveryRequestSchema, {
    idempotencyKey: key,
    ownerId,
    pickup: { latitude: 47.615, longitude: -122.335 },
    dropoff,
    deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
    confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: `pkg-${key}`, size: PackageSize.SMALL, weightKg: 1 }],
  });
}

async function workflowReaches(deliveryId: string, state: WorkflowState): Promise<void> {
  await vi.waitFor(
    async () => {
      const found = await workflows.get(deliveryId);
      if (found?.value.state !== state) throw new Error(`workflow ${deliveryId} is ${found ? WorkflowState[found.value.state] : "absent"}`);
    },
    { timeout: 20_000, interval: 50 },
  );
}

/** Lines of the server's log reporting a refused publish or subscription. */
function violations(): string[] {
  return nats
    .logTail(10_000)
    .split("\n")
    .filter((line) => /violation/i.test(line));
}

beforeAll(async () => {
  nats = await startNatsServer({ auth: true, monitoring: true });
  // Stream setup is admin's, as scripts/run.ts does before it starts the services.
  admin = await nats.connectAs("admin");
  await ensureStreams(await admin.jetstreamManager());
  platform = await startPlatform(nats.url, {
    env: {
      ...nats.serviceEnv,
      DRONE_FLEET_SIZE: "4",
      DRONE_MAX_PAYLOADS_KG: "5",
      DRONE_TIME_SCALE: "120",
      DRONE_TELEMETRY_HZ: "5",
      DRONE_SIMULATOR_LEASE_MS: "1000",
      DELIVERY_LOCATION_WRITE_INTERVAL_MS: "200",
      SCHEDULER_RETRY_BASE_MS: "100",
      SCHEDULER_RETRY_MAX_MS: "400",
      SUPERVISOR_RETRY_BASE_MS: "100",
      SUPERVISOR_RETRY_MAX_MS: "400",
    },
  });
  workflows = await openWorkflowStore(admin.jetstream());
  compensations = await openCompensationStore(admin.jetstream());
  ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
  deliveries = createClient(DeliveryService, { address: platform.address("delivery") });
}, 60_000);

afterAll(async () => {
  ingestion?.close();
  deliveries?.close();
  await platform?.stop();
  await drainQuietly(admin);
  await nats?.stop();
});

describe("the platform with NATS authorization on", () => {
  it("connects every service as its own NATS user", async () => {
    const response = await fetch(`${nats.monitorUrl}/connz?auth=true&limit=1024`);
    const { connections } = (await response.json()) as { connections: { name?: string; authorized_user?: string }[] };
    for (const service of SERVICE_NATS_IDENTITIES) {
      const own = connections.filter((c) => c.name === service);
      expect(own.length, service).toBeGreaterThan(0);
      for (const c of own) expect(c.authorized_user, service).toBe(service);
    }
  });

  it("schedules, flies and watches a delivery to Completed, and keeps its history", async () => {
    // Watched from its acceptance, with a drop-off 10 km away (a flight of several seconds at this
    // time scale): the stream sees the flight however loaded the machine.
    const { deliveryId } = await ingestion.scheduleDelivery(request("auth-fly", "acct-demo", { latitude: 47.705, longitude: -122.345 }));
    const seen: DeliveryStage[] = [];
    let positions = 0;
    for await (const update of deliveries.watchDelivery({ deliveryId, includePositions: true }, { timeoutMs: 30_000 })) {
      if (update.update.case === "statusEvent") seen.push(update.update.value.stage);
      if (update.update.case === "position") positions++;
    }
    expect(seen[seen.length - 1]).toBe(DeliveryStage.COMPLETED);
    expect(positions).toBeGreaterThan(0);
    await workflowReaches(deliveryId, WorkflowState.SUCCEEDED);
    const { status } = await deliveries.getDeliveryStatus({ deliveryId });
    expect(status?.stage).toBe(DeliveryStage.COMPLETED);
    await vi.waitFor(
      async () => {
        const { events } = await deliveries.getDeliveryHistory({ deliveryId });
        expect(events.map((e) => e.stage)).toContain(DeliveryStage.COMPLETED);
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it("hands a failed workflow from the Scheduler to the Supervisor, which compensates it", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(request("auth-suspended", "acct-suspended"));
    await vi.waitFor(
      async () => {
        if (!(await compensations.get(deliveryId))?.value.complete) throw new Error("not compensated yet");
      },
      { timeout: 20_000, interval: 50 },
    );
    await workflowReaches(deliveryId, WorkflowState.COMPENSATED);
  });

  it("refused nothing the services did", () => {
    expect(violations()).toEqual([]);
  });
});
