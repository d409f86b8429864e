// A delivery is visible from the moment it is accepted (stage Requested), follows its drone even
// when the drone sets off before the record names it, ends Failed with a code when the workflow
// fails (also when it never opened the record), and is completed by the reconciliation when its
// drop-off event was missed.
import { Code, ConnectError } from "@connectrpc/connect";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryFailureCode, DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { OpenDeliveryRequestSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { AssignmentSchema, AssignmentState } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { ScheduleDeliveryCommandSchema } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import { metricsRegistry } from "../../lib/observability/metrics.js";
import { QueuedScheduleRequests } from "./accepted-requests.js";
import { DeliveryLedger } from "./ledger.js";
import { StatusOutbox } from "./outbox.js";
import { DeliveryReconciler } from "./reconcile.js";
import { DeliveryTestBed, DROPOFF, FlightStage, inHours, PICKUP, scheduleRequest } from "./test-support.js";

let bed: DeliveryTestBed;
/** One deadline for every request, so an open and a schedule of one id describe the same delivery. */
const DEADLINE = inHours(24);

beforeAll(async () => {
  bed = await DeliveryTestBed.start({ DELIVERY_RECONCILE_INTERVAL_MS: "0" });
}, 60_000);

afterAll(async () => {
  await bed?.stop();
});

function openRequest(deliveryId: string): MessageInitShape<typeof OpenDeliveryRequestSchema> {
  const { carrier: _carrier, ...rest } = scheduleRequest(deliveryId, "unused", { deadline: DEADLINE });
  return { ...rest, acceptTime: timestampFromDate(new Date(Date.now() - 1_000)) };
}

async function expectRpcError(call: Promise<unknown>, code: Code): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  expect((error as ConnectError).code).toBe(code);
  return error as ConnectError;
}

describe("Requested", () => {
  it("opens a delivery at Requested, then Created once its carrier is known, and publishes both", async () => {
    const { delivery, created } = await bed.client.openDelivery(openRequest("req-1"));
    expect(created).toBe(true);
    expect(delivery?.stage).toBe(DeliveryStage.REQUESTED);
    expect(delivery?.carrier.case).toBeUndefined();
    // Opening again is a repeat; another request under the id is refused.
    expect((await bed.client.openDelivery(openRequest("req-1"))).created).toBe(false);
    await expectRpcError(bed.client.openDelivery({ ...openRequest("req-1"), expedited: true }), Code.AlreadyExists);

    const { status: current } = await bed.client.getDeliveryStatus({ deliveryId: "req-1" });
    expect(current?.stage).toBe(DeliveryStage.REQUESTED);

    const scheduled = await bed.schedule("req-1", "drone-r1", { deadline: DEADLINE });
    expect(scheduled.stage).toBe(DeliveryStage.CREATED);
    expect(scheduled.carrier).toEqual({ case: "droneId", value: "drone-r1" });
    // The same carrier again is a repeat; another carrier is refused.
    expect((await bed.client.scheduleDelivery(scheduleRequest("req-1", "drone-r1", { deadline: DEADLINE }))).created).toBe(false);
    await expectRpcError(bed.client.scheduleDelivery(scheduleRequest("req-1", "drone-other", { deadline: DEADLINE })), Code.AlreadyExists);
    await bed.published("req-1", [DeliveryStage.REQUESTED, DeliveryStage.CREATED]);
  });

  it("reads a just-accepted delivery from its queued request before the workflow opened it", async () => {
    const command = create(ScheduleDeliveryCommandSchema, {
      deliveryId: "req-queued",
      ownerId: "acct-demo",
      pickup: PICKUP,
      dropoff: DROPOFF,
      deadline: inHours(24),
      confirmationRequired: 1,
      packages: [{ packageId: "req-queued-pkg", size: 1, weightKg: 1 }],
      idempotencyKey: "k-queued",
      acceptTime: timestampFromDate(new Date()),
    });
    await publishMessage(bed.js, subjects.scheduleRequest("req-queued"), ScheduleDeliveryCommandSchema, command, {
      msgId: "req-queued:schedule",
      expectStream: STREAMS.DELIVERY_REQUESTS.name,
    });
    const { delivery } = await bed.client.getDelivery({ deliveryId: "req-queued" });
    expect(delivery?.stage).toBe(DeliveryStage.REQUESTED);
    expect(delivery?.ownerId).toBe("acct-demo");
    // Recorded on the spot: the workflow's own open is a repeat of it.
    const { created } = await bed.client.openDelivery({ ...openRequest("req-queued"), ...command, $typeName: undefined });
    expect(created).toBe(false);
    // An id with no record and no queued request is still NOT_FOUND, at once.
    await expectRpcError(bed.client.getDelivery({ deliveryId: "req-nothing" }), Code.NotFound);
    expect(await new QueuedScheduleRequests(bed.jsm).find("req-nothing")).toBeUndefined();
  });

  it("keeps the events of a drone that set off before the record names it, and applies them once it does", async () => {
    await bed.client.openDelivery(openRequest("req-early"));
    await bed.fly("drone-early", "req-early", FlightStage.HEADED_TO_PICKUP, 1);
    await bed.fly("drone-early", "req-early", FlightStage.HEADED_TO_DROPOFF, 2, PICKUP);
    await bed.schedule("req-early", "drone-early", { deadline: DEADLINE });
    await bed.reaches("req-early", DeliveryStage.HEADED_TO_DROPOFF);
    await bed.fly("drone-early", "req-early", FlightStage.DROPPING_OFF, 3, DROPOFF);
    await bed.reaches("req-early", DeliveryStage.COMPLETED);
    await bed.published("req-early", [
      DeliveryStage.REQUESTED,
      DeliveryStage.CREATED,
      DeliveryStage.HEADED_TO_PICKUP,
      DeliveryStage.HEADED_TO_DROPOFF,
      DeliveryStage.COMPLETED,
    ]);
  });
});

describe("Failed", () => {
  it("fails a Requested delivery with a code and a reason, visible in the record, the status and the event", async () => {
    await bed.client.openDelivery(openRequest("req-fail"));
    const { delivery } = await bed.client.failDelivery({
      deliveryId: "req-fail",
      reason: "No drone was free to carry the parcels in time.",
      failureCode: DeliveryFailureCode.NO_DRONE_AVAILABLE,
    });
    expect(delivery?.stage).toBe(DeliveryStage.FAILED);
    expect(delivery?.failureCode).toBe(DeliveryFailureCode.NO_DRONE_AVAILABLE);
    const { status: current } = await bed.client.getDeliveryStatus({ deliveryId: "req-fail" });
    expect(current).toMatchObject({ stage: DeliveryStage.FAILED, failureCode: DeliveryFailureCode.NO_DRONE_AVAILABLE, endReason: "No drone was free to carry the parcels in time." });
    const messages = await bed.published("req-fail", [DeliveryStage.REQUESTED, DeliveryStage.FAILED]);
    expect(messages[1]?.event.failureCode).toBe(DeliveryFailureCode.NO_DRONE_AVAILABLE);
  });

  it("records a never-opened delivery Failed from its request, and answers NOT_FOUND without one", async () => {
    await expectRpcError(bed.client.failDelivery({ deliveryId: "req-never", reason: "gave up" }), Code.NotFound);
    const { delivery } = await bed.client.failDelivery({
      deliveryId: "req-never",
      reason: "The account may not order deliveries.",
      failureCode: DeliveryFailureCode.ACCOUNT_NOT_ALLOWED,
      request: openRequest("req-never"),
    });
    expect(delivery).toMatchObject({ stage: DeliveryStage.FAILED, failureCode: DeliveryFailureCode.ACCOUNT_NOT_ALLOWED, ownerId: "acct-demo" });
    const { deliveries } = await bed.client.listDeliveries({ ownerId: "acct-demo", pageSize: 100 });
    expect(deliveries.map((d) => d.deliveryId)).toContain("req-never");
  });

  it("refuses a request naming another delivery, and a reschedule while still Requested", async () => {
    await expectRpcError(
      bed.client.failDelivery({ deliveryId: "req-x", reason: "r", request: openRequest("req-y") }),
      Code.InvalidArgument,
    );
    await bed.client.openDelivery(openRequest("req-resched"));
    await expectRpcError(
      bed.client.rescheduleDelivery({ deliveryId: "req-resched", dropoff: PICKUP, updateMask: { paths: ["dropoff"] } }),
      Code.FailedPrecondition,
    );
  });
});

describe("reconciliation", () => {
  it("completes a delivery whose drone completed its assignment while its drop-off event was missed, and counts it", async () => {
    await bed.client.openDelivery(openRequest("rec-1"));
    await bed.schedule("rec-1", "drone-rec", { deadline: DEADLINE });
    await bed.fly("drone-rec", "rec-1", FlightStage.HEADED_TO_DROPOFF, 1);
    await bed.reaches("rec-1", DeliveryStage.HEADED_TO_DROPOFF);

    const log = pino({ level: "silent" });
    const ledger = new DeliveryLedger(bed.store, new StatusOutbox(bed.store, bed.js, bed.jsm, log, { publishTimeoutMs: 5_000, settleMs: 0 }), log);
    const assignments = new Map([
      ["rec-1", create(AssignmentSchema, { deliveryId: "rec-1", droneId: "drone-rec", state: AssignmentState.COMPLETED, dropoff: DROPOFF })],
      // Still flying: left alone.
      ["req-1", create(AssignmentSchema, { deliveryId: "req-1", droneId: "drone-r1", state: AssignmentState.ACTIVE })],
    ]);
    const reconciler = new DeliveryReconciler(ledger, { assignmentOf: async (id) => assignments.get(id) }, { intervalMs: 0, quietMs: 0 }, log);
    const repaired = await reconciler.sweep();
    expect(repaired).toEqual(["rec-1"]);
    const done = await bed.reaches("rec-1", DeliveryStage.COMPLETED);
    expect(done.lastKnownLocation).toMatchObject({ latitude: DROPOFF.latitude, longitude: DROPOFF.longitude });
    expect(await reconciler.sweep()).toEqual([]);
    const metrics = await metricsRegistry().getSingleMetricAsString("reconcile_repairs_total");
    expect(metrics).toMatch(/repair="completed_from_assignment"\S* 1/);
  });
});
