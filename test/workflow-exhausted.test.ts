// A request whose workflow keeps failing transiently (the Account service is down) runs out of
// deliveries and is handed to the Supervisor instead of being dropped.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { IngestionService, ScheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { FailureKind, WorkflowState, WorkflowStep } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { createClient } from "../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { STREAMS } from "../lib/nats/streams.js";
import { openWorkflowStore } from "../services/scheduler/workflow-store.js";
import { openCompensationStore } from "../services/supervisor/compensation-store.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";
import { startPlatform, type TestPlatform } from "./harness/platform.js";

let nats: TestNatsServer;
let nc: NatsConnection;
let platform: TestPlatform;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connectNats({ url: nats.url, name: "exhausted-test" });
  platform = await startPlatform(nats.url, {
    // No account service: every attempt's first step answers UNAVAILABLE.
    only: ["package", "drone", "thirdparty", "delivery", "ingestion", "scheduler", "supervisor"],
    env: {
      ACCOUNT_ADDRESS: "127.0.0.1:1",
      SCHEDULER_MAX_DELIVER: "3",
      SCHEDULER_RETRY_BASE_MS: "50",
      SCHEDULER_RETRY_MAX_MS: "100",
      CALL_TIMEOUT_MS: "500",
    },
  });
});

afterAll(async () => {
  await platform?.stop();
  await drainQuietly(nc);
  await nats?.stop();
});

describe("a request that runs out of deliveries", () => {
  it("is recorded as failed, handed to the supervisor and compensated, and leaves the queue", async () => {
    const ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
    const { deliveryId } = await ingestion.scheduleDelivery(
      create(ScheduleDeliveryRequestSchema, {
        idempotencyKey: "exhausted",
        ownerId: "acct-demo",
        pickup: { latitude: 1, longitude: 1 },
        dropoff: { latitude: 1.01, longitude: 1.01 },
        deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
        confirmationRequired: ConfirmationType.NONE,
        packages: [{ packageId: "pkg-exhausted", size: PackageSize.SMALL, weightKg: 1 }],
      }),
    );
    ingestion.close();
    const workflows = await openWorkflowStore(nc.jetstream());
    const compensations = await openCompensationStore(nc.jetstream());
    const compensation = await vi.waitFor(
      async () => {
        const found = await compensations.get(deliveryId);
        if (!found?.value.complete) throw new Error("not compensated yet");
        return found.value;
      },
      { timeout: 20_000, interval: 50 },
    );
    expect(compensation.failure?.kind).toBe(FailureKind.RETRIES_EXHAUSTED);
    expect(compensation.failure?.attempts).toBe(3);
    // The saga log is marked once every compensation is recorded.
    const progress = await vi.waitFor(
      async () => {
        const found = (await workflows.get(deliveryId))?.value;
        if (found?.state !== WorkflowState.COMPENSATED) throw new Error(`workflow ${found ? WorkflowState[found.state] : "absent"}`);
        return found;
      },
      { timeout: 20_000, interval: 50 },
    );
    expect(progress?.failedStep).toBe(WorkflowStep.CHECK_ACCOUNT);
    expect(progress?.failureReason).toContain("gave up after 3 attempts");
    const jsm = await nc.jetstreamManager();
    expect((await jsm.streams.info(STREAMS.DELIVERY_REQUESTS.name)).state.messages).toBe(0);
  });
});
