// The Scheduler process is killed (SIGKILL) in the middle of a batch of 100 accepted requests and
// started again: every request ends scheduled (or failed and compensated), none twice.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JetStreamManager, NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneStatus } from "../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService } from "../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { IngestionService, ScheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { PackageService } from "../gen/dronedelivery/package/v1/package_service_pb.js";
import { WorkflowState } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";
import { createClient } from "../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { STREAMS } from "../lib/nats/streams.js";
import { openWorkflowStore, type WorkflowStore } from "../services/scheduler/workflow-store.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";
import { startPlatform, type TestPlatform } from "./harness/platform.js";

/** Far more than the scheduler works on at once (SCHEDULER_CONCURRENCY 8), so that it dies with work in its hands and more queued. */
const REQUESTS = 100;
/** The scheduler is killed once this many requests have left the stream. */
const TAKEN_AT_KILL = 20;
const OWNER = "acct-contoso";
const root = join(import.meta.dirname, "..");

let nats: TestNatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let platform: TestPlatform;
let workflows: WorkflowStore;
let scheduler: ChildProcess | undefined;

/** Starts the Scheduler as its own process, as `make run` does. */
function startScheduler(): ChildProcess {
  // Compiled when the build is current (make vitest builds first), else through tsx.
  const child = spawn(process.execPath, nodeArgsFor("services/scheduler/main.ts"), {
    cwd: root,
    env: {
      ...process.env,
      ...platform.env,
      NATS_URL: nats.url,
      SCHEDULER_PORT: "0",
      SCHEDULER_ACK_WAIT_MS: "2000",
      SCHEDULER_CONCURRENCY: "8",
      LOG_LEVEL: "warn",
    } as NodeJS.ProcessEnv,
    stdio: ["ignore", "ignore", "inherit"],
  });
  return child;
}

async function requestsLeft(): Promise<number> {
  return (await jsm.streams.info(STREAMS.DELIVERY_REQUESTS.name)).state.messages;
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connectNats({ url: nats.url, name: "crash-test" });
  jsm = await nc.jetstreamManager();
  platform = await startPlatform(nats.url, {
    only: ["account", "package", "drone", "thirdparty", "delivery", "ingestion", "supervisor"],
    env: { DRONE_FLEET_SIZE: String(REQUESTS + 20), DRONE_MAX_PAYLOADS_KG: "5", CALL_TIMEOUT_MS: "3000" },
  });
  workflows = await openWorkflowStore(nc.jetstream());
}, 60_000);

afterAll(async () => {
  if (scheduler && scheduler.exitCode === null) {
    scheduler.kill("SIGKILL");
    await once(scheduler, "exit");
  }
  await platform?.stop();
  await drainQuietly(nc);
  await nats?.stop();
});

describe("a scheduler killed mid-batch", () => {
  it("leaves every accepted request scheduled once, after a restart", { timeout: 120_000 }, async () => {
    const ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
    const deadline = timestampFromDate(new Date(Date.now() + 86_400_000));
    const ids: string[] = [];
    for (let batch = 0; batch < REQUESTS; batch += 20) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ingestion.scheduleDelivery(
            create(ScheduleDeliveryRequestSchema, {
              idempotencyKey: `crash-${batch + i}`,
              ownerId: OWNER,
              pickup: { latitude: 47.6, longitude: -122.3 },
              dropoff: { latitude: 47.65, longitude: -122.35 },
              deadline,
              confirmationRequired: ConfirmationType.NONE,
              packages: [{ packageId: `crash-pkg-${batch + i}`, size: PackageSize.SMALL, weightKg: 1 }],
            }),
          ),
        ),
      );
      ids.push(...answers.map((a) => a.deliveryId));
    }
    ingestion.close();
    expect(new Set(ids).size).toBe(REQUESTS);
    expect(await requestsLeft()).toBe(REQUESTS);

    // Kill the scheduler once it is well into the batch, with work in its hands.
    scheduler = startScheduler();
    await vi.waitFor(
      async () => {
        if ((await requestsLeft()) > REQUESTS - TAKEN_AT_KILL) throw new Error("not far enough yet");
      },
      { timeout: 60_000, interval: 20 },
    );
    scheduler.kill("SIGKILL");
    await once(scheduler, "exit");
    const leftAtKill = await requestsLeft();
    expect(leftAtKill).toBeGreaterThan(0);

    scheduler = startScheduler();
    await vi.waitFor(
      async () => {
        if ((await requestsLeft()) > 0) throw new Error("requests still queued");
      },
      { timeout: 90_000, interval: 100 },
    );

    // Every workflow ended; count what the domain services hold.
    const states = await Promise.all(ids.map(async (id) => (await workflows.get(id))?.value.state));
    const succeeded = ids.filter((_, i) => states[i] === WorkflowState.SUCCEEDED);
    const compensated = ids.filter((_, i) => states[i] === WorkflowState.COMPENSATED || states[i] === WorkflowState.FAILED);
    expect(succeeded.length + compensated.length).toBe(REQUESTS);
    expect(succeeded.length).toBe(REQUESTS);

    const drones = createClient(DroneSchedulerService, { address: platform.address("drone") });
    const assigned: string[] = [];
    let pageToken = "";
    do {
      const page = await drones.listDrones({ status: DroneStatus.ASSIGNED, pageSize: 1000, pageToken });
      assigned.push(...page.drones.map((d) => d.deliveryId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    drones.close();
    expect(assigned.length).toBe(succeeded.length);
    expect(new Set(assigned)).toEqual(new Set(succeeded));

    const packages = createClient(PackageService, { address: platform.address("package") });
    expect((await packages.getPackageSummary({ ownerId: OWNER })).packageCount).toBe(BigInt(succeeded.length));
    packages.close();

    const deliveries = createClient(DeliveryService, { address: platform.address("delivery") });
    const listed: string[] = [];
    pageToken = "";
    do {
      const page = await deliveries.listDeliveries({ ownerId: OWNER, pageSize: 100, pageToken });
      // Scheduled and under way: drones fly as soon as they are assigned.
      const underWay = [DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP, DeliveryStage.HEADED_TO_DROPOFF];
      listed.push(...page.deliveries.filter((d) => underWay.includes(d.stage)).map((d) => d.deliveryId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    deliveries.close();
    expect(listed.length).toBe(REQUESTS);
    expect(new Set(listed)).toEqual(new Set(succeeded));
  });
});
