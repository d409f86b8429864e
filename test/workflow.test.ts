// The asynchronous spine end to end, in-process over real gRPC and a real nats-server: a request
// accepted by Ingestion is scheduled by the Scheduler's saga over the domain services, and a
// failure is undone by the Supervisor.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { NatsConnection } from "nats";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AccountService } from "../gen/dronedelivery/account/v1/account_service_pb.js";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryFailureCode, DeliveryStage } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { AssignmentState, DroneStatus } from "../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneSchedulerService } from "../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import {
  IngestionService,
  ScheduleDeliveryRequestSchema,
  type ScheduleDeliveryRequest,
} from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { PackageService } from "../gen/dronedelivery/package/v1/package_service_pb.js";
import { ThirdPartyTransportService } from "../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { FailureKind, WorkflowProgressSchema, WorkflowState, WorkflowStep } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { createClient, type Client } from "../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { openCompensationStore, type CompensationStore } from "../services/supervisor/compensation-store.js";
import { openWorkflowStore, type WorkflowStore } from "../services/scheduler/workflow-store.js";
import { deliveryIdFor } from "../services/ingestion/ids.js";
import { sweepStaleWorkflows } from "../services/supervisor/stale-sweep.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";
import { startPlatform, type TestPlatform } from "./harness/platform.js";

let nats: TestNatsServer;
let nc: NatsConnection;
let platform: TestPlatform;
let workflows: WorkflowStore;
let compensations: CompensationStore;
let ingestion: Client<typeof IngestionService>;
let deliveries: Client<typeof DeliveryService>;
let drones: Client<typeof DroneSchedulerService>;
let packages: Client<typeof PackageService>;
let accounts: Client<typeof AccountService>;
let thirdParty: Client<typeof ThirdPartyTransportService>;

const FLEET = 6;

function clients(): void {
  ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
  deliveries = createClient(DeliveryService, { address: platform.address("delivery") });
  drones = createClient(DroneSchedulerService, { address: platform.address("drone") });
  packages = createClient(PackageService, { address: platform.address("package") });
  accounts = createClient(AccountService, { address: platform.address("account") });
  thirdParty = createClient(ThirdPartyTransportService, { address: platform.address("thirdparty") });
}

/** A valid request under `key`; `change` adjusts it. */
function request(key: string, change: (r: ScheduleDeliveryRequest) => void = () => {}): ScheduleDeliveryRequest {
  const r = create(ScheduleDeliveryRequestSchema, {
    idempotencyKey: key,
    ownerId: "acct-demo",
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff: { latitude: 47.63, longitude: -122.36 },
    deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
    confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: `pkg-${key}`, size: PackageSize.SMALL, weightKg: 1.2 }],
  });
  change(r);
  return r;
}

/** Waits until the workflow of `deliveryId` is in one of `states`. */
async function workflowReaches(deliveryId: string, ...states: WorkflowState[]) {
  return vi.waitFor(
    async () => {
      const found = await workflows.get(deliveryId);
      if (!found || !states.includes(found.value.state)) {
        throw new Error(`workflow ${deliveryId} is ${found ? WorkflowState[found.value.state] : "absent"}`);
      }
      return found.value;
    },
    { timeout: 20_000, interval: 50 },
  );
}

async function compensated(deliveryId: string) {
  return vi.waitFor(
    async () => {
      const found = await compensations.get(deliveryId);
      if (!found?.value.complete) throw new Error(`compensation of ${deliveryId} not complete`);
      return found.value;
    },
    { timeout: 20_000, interval: 50 },
  );
}

async function rpcCode(promise: Promise<unknown>): Promise<Code | undefined> {
  return promise.then(
    () => undefined,
    (e: unknown) => (e instanceof ConnectError ? e.code : undefined),
  );
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connectNats({ url: nats.url, name: "workflow-test" });
  platform = await startPlatform(nats.url, {
    env: {
      DRONE_FLEET_SIZE: String(FLEET),
      DRONE_MAX_PAYLOADS_KG: "5",
      SCHEDULER_RETRY_BASE_MS: "100",
      SCHEDULER_RETRY_MAX_MS: "400",
      SCHEDULER_MAX_DELIVER: "50",
      SUPERVISOR_RETRY_BASE_MS: "100",
      SUPERVISOR_RETRY_MAX_MS: "400",
      CALL_TIMEOUT_MS: "2000",
    },
  });
  workflows = await openWorkflowStore(nc.jetstream());
  compensations = await openCompensationStore(nc.jetstream());
  clients();
});

afterAll(async () => {
  for (const c of [ingestion, deliveries, drones, packages, accounts, thirdParty]) c?.close();
  await platform?.stop();
  await drainQuietly(nc);
  await nats?.stop();
});

describe("the delivery workflow", () => {
  it("schedules an accepted request: account checked, package registered, drone assigned, delivery created", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(request("happy"));
    const progress = await workflowReaches(deliveryId, WorkflowState.SUCCEEDED);
    expect(progress.completedSteps).toEqual([
      WorkflowStep.OPEN_DELIVERY,
      WorkflowStep.CHECK_ACCOUNT,
      WorkflowStep.REGISTER_PACKAGES,
      WorkflowStep.ASSIGN_DRONE,
      WorkflowStep.CREATE_DELIVERY,
    ]);
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    // Created, or already following its drone, which takes off at once.
    expect([DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP]).toContain(delivery?.stage);
    expect(delivery?.carrier.case).toBe("droneId");
    const { assignment } = await drones.getAssignment({ deliveryId });
    expect(assignment?.droneId).toBe(delivery?.carrier.value);
    expect(assignment?.state).toBe(AssignmentState.ACTIVE);
    expect((await packages.getPackage({ packageId: "pkg-happy" })).package?.deliveryId).toBe(deliveryId);
  });

  it("books a third-party carrier for a parcel too heavy for every drone", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(
      request("heavy", (r) => (r.packages = [{ ...r.packages[0]!, size: PackageSize.LARGE, weightKg: 40 }])),
    );
    const progress = await workflowReaches(deliveryId, WorkflowState.SUCCEEDED);
    expect(progress.completedSteps).toContain(WorkflowStep.ARRANGE_THIRD_PARTY);
    expect(progress.completedSteps).not.toContain(WorkflowStep.ASSIGN_DRONE);
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    expect(delivery?.carrier.case).toBe("thirdParty");
    const { pickup } = await thirdParty.getPickup({ deliveryId });
    expect(delivery?.carrier.case === "thirdParty" && delivery.carrier.value.trackingId).toBe(pickup?.trackingId);
  });

  it("fails the workflow of a suspended account and hands it to the supervisor: the delivery ends Failed, nothing else is left behind", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(request("suspended", (r) => (r.ownerId = "acct-suspended")));
    await compensated(deliveryId);
    const progress = await workflowReaches(deliveryId, WorkflowState.COMPENSATED);
    expect(progress.failedStep).toBe(WorkflowStep.CHECK_ACCOUNT);
    expect(progress.failureKind).toBe(FailureKind.PERMANENT);
    expect(progress.failureReason).toContain("payment overdue");
    // The customer sees the delivery fail, with a code and the account's reason.
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    expect(delivery?.stage).toBe(DeliveryStage.FAILED);
    expect(delivery?.failureCode).toBe(DeliveryFailureCode.ACCOUNT_NOT_ALLOWED);
    expect(delivery?.endReason).toContain("payment overdue");
    expect(await rpcCode(drones.getAssignment({ deliveryId }))).toBe(Code.NotFound);
    expect(await rpcCode(packages.getPackage({ packageId: "pkg-suspended" }))).toBe(Code.NotFound);
  });

  it("undoes every completed step in reverse when a late step fails for good: drone free, packages gone, delivery Failed", async () => {
    // The delivery's record already names another carrier, so giving it the drone fails for good.
    const r = request("late-failure", (x) => (x.ownerId = "acct-contoso"));
    const deliveryId = deliveryIdFor("acct-contoso", "late-failure");
    await deliveries.scheduleDelivery({
      deliveryId,
      ownerId: r.ownerId,
      pickup: r.pickup,
      dropoff: r.dropoff,
      deadline: r.deadline,
      confirmationRequired: r.confirmationRequired,
      packages: r.packages,
      carrier: { case: "droneId", value: "drone-elsewhere" },
    });
    await ingestion.scheduleDelivery(r);
    const compensation = await compensated(deliveryId);
    const progress = await workflowReaches(deliveryId, WorkflowState.COMPENSATED);
    expect(progress.failedStep).toBe(WorkflowStep.CREATE_DELIVERY);
    expect(progress.completedSteps).toContain(WorkflowStep.ASSIGN_DRONE);
    expect(compensation.done).toEqual(compensation.planned);

    const { assignment } = await drones.getAssignment({ deliveryId });
    expect(assignment?.state).toBe(AssignmentState.RELEASED);
    const { drone } = await drones.getDrone({ droneId: assignment!.droneId });
    expect(drone?.status).toBe(DroneStatus.AVAILABLE);
    expect(await rpcCode(packages.getPackage({ packageId: "pkg-late-failure" }))).toBe(Code.NotFound);
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    expect(delivery?.stage).toBe(DeliveryStage.FAILED);
  });

  it("schedules one delivery with one drone for a request sent twice with one idempotency key", async () => {
    const first = await ingestion.scheduleDelivery(request("twice"));
    await workflowReaches(first.deliveryId, WorkflowState.SUCCEEDED);
    const second = await ingestion.scheduleDelivery(request("twice"));
    expect(second.deliveryId).toBe(first.deliveryId);
    const { deliveries: list } = await deliveries.listDeliveries({ ownerId: "acct-demo", pageSize: 100 });
    expect(list.filter((d) => d.deliveryId === first.deliveryId)).toHaveLength(1);
    const { drones: assigned } = await drones.listDrones({ status: DroneStatus.ASSIGNED, pageSize: 100 });
    expect(assigned.filter((d) => d.deliveryId === first.deliveryId)).toHaveLength(1);
  });

  it("retries while a downstream service is down and completes when it returns, without duplicates", async () => {
    await platform.stopService("package");
    const { deliveryId } = await ingestion.scheduleDelivery(request("outage"));
    // The workflow keeps retrying the package step.
    await vi.waitFor(
      async () => {
        const found = await workflows.get(deliveryId);
        if ((found?.value.attempts ?? 0) < 3) throw new Error("not retried yet");
      },
      { timeout: 20_000, interval: 50 },
    );
    expect((await workflows.get(deliveryId))?.value.state).toBe(WorkflowState.RUNNING);
    await platform.startService("package");
    await workflowReaches(deliveryId, WorkflowState.SUCCEEDED);
    const { deliveries: list } = await deliveries.listDeliveries({ ownerId: "acct-demo", pageSize: 100 });
    expect(list.filter((d) => d.deliveryId === deliveryId)).toHaveLength(1);
    expect((await packages.getPackage({ packageId: "pkg-outage" })).package?.deliveryId).toBe(deliveryId);
  });

  it("cancels a scheduled delivery through the whole path: drone released, delivery Cancelled", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(request("cancel-me"));
    await workflowReaches(deliveryId, WorkflowState.SUCCEEDED);
    const { assignment } = await drones.getAssignment({ deliveryId });

    await ingestion.cancelDelivery({ deliveryId, ownerId: "acct-demo", reason: "no longer needed" });
    await vi.waitFor(
      async () => {
        const { delivery } = await deliveries.getDelivery({ deliveryId });
        if (delivery?.stage !== DeliveryStage.CANCELLED) throw new Error(`stage ${delivery?.stage}`);
      },
      { timeout: 20_000, interval: 50 },
    );
    await vi.waitFor(
      async () => {
        const { drone } = await drones.getDrone({ droneId: assignment!.droneId });
        if (drone?.status !== DroneStatus.AVAILABLE) throw new Error("drone not released yet");
      },
      { timeout: 20_000, interval: 50 },
    );
    expect((await drones.getAssignment({ deliveryId })).assignment?.state).toBe(AssignmentState.RELEASED);
  });

  it("applies a cancel sent right behind its schedule request once the delivery exists", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(request("cancel-early"));
    await ingestion.cancelDelivery({ deliveryId, ownerId: "acct-demo" });
    await vi.waitFor(
      async () => {
        const { delivery } = await deliveries.getDelivery({ deliveryId });
        if (delivery?.stage !== DeliveryStage.CANCELLED) throw new Error(`stage ${delivery?.stage}`);
      },
      { timeout: 20_000, interval: 50 },
    );
  });

  it("reschedules a delivery through the whole path, and ignores a change by another account", async () => {
    const { deliveryId } = await ingestion.scheduleDelivery(request("move-me"));
    await workflowReaches(deliveryId, WorkflowState.SUCCEEDED);
    const newDeadline = timestampFromDate(new Date(Date.now() + 2 * 86_400_000));
    await ingestion.rescheduleDelivery({
      deliveryId,
      ownerId: "acct-contoso",
      dropoff: { latitude: 10, longitude: 10 },
      updateMask: { paths: ["dropoff"] },
    });
    await ingestion.rescheduleDelivery({
      deliveryId,
      ownerId: "acct-demo",
      deadline: newDeadline,
      dropoff: { latitude: 47.7, longitude: -122.4 },
      updateMask: { paths: ["deadline", "dropoff"] },
    });
    const delivery = await vi.waitFor(
      async () => {
        const { delivery } = await deliveries.getDelivery({ deliveryId });
        if (delivery?.dropoff?.latitude !== 47.7) throw new Error(`drop-off ${delivery?.dropoff?.latitude}`);
        return delivery;
      },
      { timeout: 20_000, interval: 50 },
    );
    expect(delivery.deadline).toEqual(newDeadline);
    // The drone was re-routed before the delivery changed: it flies to the new drop-off.
    const { assignment } = await drones.getAssignment({ deliveryId });
    expect(assignment?.dropoff?.latitude).toBe(47.7);
    // Both commands were processed; only the owner's changed the delivery.
    await vi.waitFor(
      async () => {
        const info = await (await nc.jetstreamManager()).consumers.info("DELIVERY_REQUESTS", "scheduler");
        if (info.num_pending + info.num_ack_pending > 0) throw new Error("commands still pending");
      },
      { timeout: 20_000, interval: 50 },
    );
    const { delivery: after } = await deliveries.getDelivery({ deliveryId });
    // Rescheduled is entered once if the drone had not set off yet (once under way the stage stays).
    expect(after?.history.filter((h) => h.stage === DeliveryStage.RESCHEDULED).length).toBeLessThanOrEqual(1);
    expect(after?.dropoff?.latitude).toBe(47.7);
  });

  it("hands a workflow stuck longer than the threshold to compensation", async () => {
    const deliveryId = "dlv-stale";
    // The drone step took effect, but the workflow never recorded it and then stopped.
    await drones.assignDrone({
      deliveryId,
      ownerId: "acct-demo",
      pickup: { latitude: 47.61, longitude: -122.33 },
      dropoff: { latitude: 47.62, longitude: -122.34 },
      packages: [{ packageId: "pkg-stale", size: PackageSize.SMALL, weightKg: 1 }],
    });
    await workflows.create(
      deliveryId,
      create(WorkflowProgressSchema, {
        deliveryId,
        ownerId: "acct-demo",
        state: WorkflowState.RUNNING,
        completedSteps: [WorkflowStep.CHECK_ACCOUNT, WorkflowStep.REGISTER_PACKAGES],
        packageIds: ["pkg-stale"],
        updateTime: timestampFromDate(new Date(Date.now() - 120_000)),
      }),
    );
    const marked = await sweepStaleWorkflows(workflows, nc.jetstream(), 60_000, pino({ level: "silent" }));
    expect(marked).toEqual([deliveryId]);
    await compensated(deliveryId);
    const progress = await workflowReaches(deliveryId, WorkflowState.COMPENSATED);
    expect(progress.failureKind).toBe(FailureKind.STALE);
    expect(progress.failedStep).toBe(WorkflowStep.ASSIGN_DRONE);
    expect((await drones.getAssignment({ deliveryId })).assignment?.state).toBe(AssignmentState.RELEASED);
    // A second sweep finds nothing more to do.
    expect(await sweepStaleWorkflows(workflows, nc.jetstream(), 60_000, pino({ level: "silent" }))).toEqual([]);
  });
});
