// Every accepted delivery is visible from the accept and ends in an outcome its customer can see:
// Requested before the workflow runs, Failed with a code when it cannot be carried out (account,
// parcel conflict, no drone), and compensation undoes what took effect, even in part.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryFailureCode, DeliveryStage, type Delivery } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import {
  IngestionService,
  ScheduleDeliveryRequestSchema,
  type ScheduleDeliveryRequest,
} from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { PackageService } from "../gen/dronedelivery/package/v1/package_service_pb.js";
import { createClient, type Client } from "../lib/grpc/index.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";
import { startPlatform, type TestPlatform } from "./harness/platform.js";

let nats: TestNatsServer;
let platform: TestPlatform;
let ingestion: Client<typeof IngestionService>;
let deliveries: Client<typeof DeliveryService>;
let packages: Client<typeof PackageService>;

const WAIT = { timeout: 30_000, interval: 50 } as const;

function request(key: string, packageIds: readonly string[], ownerId = "acct-demo"): ScheduleDeliveryRequest {
  return create(ScheduleDeliveryRequestSchema, {
    idempotencyKey: key,
    ownerId,
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff: { latitude: 47.63, longitude: -122.36 },
    deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
    confirmationRequired: ConfirmationType.NONE,
    packages: packageIds.map((packageId) => ({ packageId, size: PackageSize.SMALL, weightKg: 1 })),
  });
}

/** Waits until the delivery is at one of `stages`, and answers it. */
function reaches(deliveryId: string, ...stages: DeliveryStage[]): Promise<Delivery> {
  return vi.waitFor(async () => {
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    if (!delivery || !stages.includes(delivery.stage)) throw new Error(`delivery ${deliveryId} is ${DeliveryStage[delivery?.stage ?? 0]}`);
    return delivery;
  }, WAIT);
}

async function rpcCode(promise: Promise<unknown>): Promise<Code | undefined> {
  return promise.then(
    () => undefined,
    (e: unknown) => (e instanceof ConnectError ? e.code : undefined),
  );
}

beforeAll(async () => {
  nats = await startNatsServer();
  platform = await startPlatform(nats.url, {
    env: {
      // Two drones flying in real time: they stay busy for the whole test.
      DRONE_FLEET_SIZE: "2",
      SCHEDULER_RETRY_BASE_MS: "100",
      SCHEDULER_RETRY_MAX_MS: "200",
      SCHEDULER_MAX_DELIVER: "4",
      SUPERVISOR_RETRY_BASE_MS: "100",
      SUPERVISOR_RETRY_MAX_MS: "400",
      CALL_TIMEOUT_MS: "2000",
    },
  });
  ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
  deliveries = createClient(DeliveryService, { address: platform.address("delivery") });
  packages = createClient(PackageService, { address: platform.address("package") });
}, 60_000);

afterAll(async () => {
  for (const c of [ingestion, deliveries, packages]) c?.close();
  await platform?.stop();
  await nats?.stop();
});

describe("outcomes of accepted deliveries", () => {
  it("shows a delivery at Requested right after it is accepted, before any workflow ran, and moves it on once one does", async () => {
    await platform.stopService("scheduler");
    const { deliveryId } = await ingestion.scheduleDelivery(request("early", ["pkg-early"]));
    const { delivery } = await deliveries.getDelivery({ deliveryId });
    expect(delivery).toMatchObject({ stage: DeliveryStage.REQUESTED, ownerId: "acct-demo" });
    const { status: current } = await deliveries.getDeliveryStatus({ deliveryId });
    expect(current?.stage).toBe(DeliveryStage.REQUESTED);
    await platform.startService("scheduler");
    const created = await reaches(deliveryId, DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP);
    expect(created.carrier.case).toBe("droneId");
  });

  it("fails a delivery whose parcels were registered in part, and removes only the parcels it registered", async () => {
    // pkg-theirs belongs to another account: the second registration is refused.
    await packages.upsertPackage({ package: { packageId: "pkg-theirs", ownerId: "acct-contoso", size: PackageSize.SMALL, weightKg: 2 } });
    const { deliveryId } = await ingestion.scheduleDelivery(request("partial", ["pkg-mine", "pkg-theirs"]));
    const failed = await reaches(deliveryId, DeliveryStage.FAILED);
    expect(failed.failureCode).toBe(DeliveryFailureCode.PACKAGE_CONFLICT);
    expect(failed.endReason).toContain("pkg-theirs");
    await vi.waitFor(async () => expect(await rpcCode(packages.getPackage({ packageId: "pkg-mine" }))).toBe(Code.NotFound), WAIT);
    expect((await packages.getPackage({ packageId: "pkg-theirs" })).package?.ownerId).toBe("acct-contoso");
    // The parcel is free for its owner's next order.
    const again = await ingestion.scheduleDelivery(request("partial-again", ["pkg-mine"], "acct-contoso"));
    await reaches(again.deliveryId, DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP);
  });

  it("refuses a parcel that is in another open delivery, and fails the delivery that asked for no free drone", async () => {
    // The two drones now carry "early" and "partial-again"; pkg-early travels in "early".
    const { deliveryId: second } = await ingestion.scheduleDelivery(request("second", ["pkg-early"]));
    const conflict = await reaches(second, DeliveryStage.FAILED);
    expect(conflict.failureCode).toBe(DeliveryFailureCode.PACKAGE_CONFLICT);
    expect((await packages.getPackage({ packageId: "pkg-early" })).package?.deliveryId).not.toBe(second);

    const { deliveryId: third } = await ingestion.scheduleDelivery(request("no-drone", ["pkg-no-drone"]));
    const noDrone = await reaches(third, DeliveryStage.FAILED);
    expect(noDrone.failureCode).toBe(DeliveryFailureCode.NO_DRONE_AVAILABLE);
    expect(noDrone.endReason).toBe("No drone was free to carry the parcels in time.");
    await vi.waitFor(async () => expect(await rpcCode(packages.getPackage({ packageId: "pkg-no-drone" }))).toBe(Code.NotFound), WAIT);
  });

  it("lets a parcel join a new delivery once its earlier delivery has ended", async () => {
    const early = await ingestion.scheduleDelivery(request("early", ["pkg-early"]));
    await ingestion.cancelDelivery({ deliveryId: early.deliveryId, ownerId: "acct-demo", reason: "changed my mind" });
    await reaches(early.deliveryId, DeliveryStage.CANCELLED);
    const { deliveryId } = await ingestion.scheduleDelivery(request("after-cancel", ["pkg-early"]));
    await reaches(deliveryId, DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP);
    expect((await packages.getPackage({ packageId: "pkg-early" })).package?.deliveryId).toBe(deliveryId);
  });
});
