// The Delivery service over real gRPC against a real nats-server.
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import type { DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import {
  DeliveryService,
  ScheduleDeliveryRequestSchema,
  type ScheduleDeliveryRequest,
  type WatchDeliveryResponse,
} from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createClient, fieldViolations, type Client } from "../../lib/grpc/index.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { healthStatus, reflectionFilesFor, reflectionServices } from "../../test/harness/grpc-probes.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { deliveryKey, ownerIndexKey } from "./keys.js";
import { enterStage } from "./lifecycle.js";
import { deliveryModule } from "./module.js";
import { positionOf } from "./owner-index.js";
import { openDeliveryStore, type DeliveryStore } from "./store.js";
import { rpcError } from "../../test/harness/rpc.js";

let nats: TestNatsServer;
let service: RunningService;
let client: Client<typeof DeliveryService>;
/** A second connection for looking at (and arranging) the stored data directly. */
let nc: NatsConnection;
let store: DeliveryStore;

const HOUR = 3_600_000;
const PICKUP = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const DROPOFF = { latitude: 47.6205, longitude: -122.3493, altitude: 0 };
const ELSEWHERE = { latitude: 47.65, longitude: -122.3, altitude: 0 };

function inHours(hours: number) {
  return timestampFromDate(new Date(Date.now() + hours * HOUR));
}

/** A schedule request as plain fields (the init shape without the message form). */
type ScheduleInit = Exclude<MessageInitShape<typeof ScheduleDeliveryRequestSchema>, ScheduleDeliveryRequest>;

function scheduleRequest(deliveryId: string, overrides: Partial<ScheduleInit> = {}): ScheduleInit {
  return {
    deliveryId,
    ownerId: "acct-demo",
    pickup: PICKUP,
    dropoff: DROPOFF,
    pickupTime: inHours(1),
    deadline: inHours(24),
    expedited: false,
    confirmationRequired: ConfirmationType.SIGNATURE,
    packages: [{ packageId: `${deliveryId}-pkg-1`, size: PackageSize.SMALL, weightKg: 1.5, tag: "fragile" }],
    carrier: { case: "droneId", value: "drone-7" },
    pickupEta: inHours(1),
    deliveryEta: inHours(2),
    ...overrides,
  };
}

async function schedule(deliveryId: string, overrides: Partial<ScheduleInit> = {}): Promise<Delivery> {
  const { delivery } = await client.scheduleDelivery(scheduleRequest(deliveryId, overrides));
  if (!delivery) throw new Error("no delivery returned");
  return delivery;
}


async function violatedFields(promise: Promise<unknown>): Promise<string[]> {
  const error = await rpcError(promise);
  expect(error.code).toBe(Code.InvalidArgument);
  return fieldViolations(error)
    .map((v) => v.field)
    .sort();
}

async function expectCode(promise: Promise<unknown>, code: Code): Promise<ConnectError> {
  const error = await rpcError(promise);
  expect(error.code, error.message).toBe(code);
  return error;
}

/** Moves a stored delivery on, as the drone's progress will. */
async function arrangeStage(deliveryId: string, stage: DeliveryStage): Promise<void> {
  await store.records.mutate(deliveryKey(deliveryId), (current) => {
    if (!current) throw new Error(`no delivery ${deliveryId}`);
    return enterStage(current, stage, new Date());
  });
}

/** The delivery's events from the history subscriber, once it holds `count` of them. */
async function historyOf(deliveryId: string, count: number): Promise<DeliveryStatusEvent[]> {
  return vi.waitFor(
    async () => {
      const { events } = await client.getDeliveryHistory({ deliveryId });
      if (events.length < count) throw new Error(`history of ${deliveryId} has ${events.length} events`);
      return events;
    },
    { timeout: 15_000, interval: 25 },
  );
}

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}

beforeAll(async () => {
  nats = await startNatsServer();
  service = await startTestService(deliveryModule, nats.url);
  client = createClient(DeliveryService, { address: service.address });
  nc = await connect({ servers: nats.url });
  store = await openDeliveryStore(nc.jetstream());
});

afterAll(async () => {
  client?.close();
  await nc?.close();
  await service?.stop();
  await nats?.stop();
});

describe("delivery service", () => {
  it("schedules a delivery at stage Created, and a repeated schedule answers the stored one", async () => {
    const request = scheduleRequest("dlv-sched");
    const first = await client.scheduleDelivery(request);
    expect(first.created).toBe(true);
    const delivery = first.delivery!;
    expect(delivery).toMatchObject({
      deliveryId: "dlv-sched",
      ownerId: "acct-demo",
      stage: DeliveryStage.CREATED,
      confirmationRequired: ConfirmationType.SIGNATURE,
      carrier: { case: "droneId", value: "drone-7" },
      endReason: "",
    });
    expect(delivery.lastKnownLocation).toMatchObject(PICKUP);
    expect(delivery.pickupEta).toEqual(request.pickupEta);
    expect(delivery.deliveryEta).toEqual(request.deliveryEta);
    expect(delivery.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED]);
    expect(delivery.createTime).toBeDefined();
    expect(delivery.updateTime).toEqual(delivery.createTime);

    const again = await client.scheduleDelivery(request);
    expect(again).toMatchObject({ created: false });
    expect(again.delivery).toEqual(delivery);

    // A retry with freshly computed estimates is still the same delivery.
    const retried = await client.scheduleDelivery({ ...request, pickupEta: inHours(1.5), deliveryEta: inHours(3) });
    expect(retried.created).toBe(false);
    expect(retried.delivery).toEqual(delivery);

    const { delivery: stored } = await client.getDelivery({ deliveryId: "dlv-sched" });
    expect(stored).toEqual(delivery);
  });

  it("answers ALREADY_EXISTS for another delivery under a used id; a retry of the first still matches after a reschedule", async () => {
    await schedule("dlv-taken");
    await expectCode(client.scheduleDelivery(scheduleRequest("dlv-taken", { expedited: true })), Code.AlreadyExists);
    await expectCode(client.scheduleDelivery(scheduleRequest("dlv-taken", { ownerId: "acct-other" })), Code.AlreadyExists);

    const original = scheduleRequest("dlv-moved");
    await client.scheduleDelivery(original);
    await client.rescheduleDelivery({ deliveryId: "dlv-moved", dropoff: ELSEWHERE, updateMask: { paths: ["dropoff"] } });
    const retry = await client.scheduleDelivery(original);
    expect(retry.created).toBe(false);
    expect(retry.delivery?.dropoff).toMatchObject(ELSEWHERE);
  });

  it("schedules with a third-party carrier", async () => {
    const delivery = await schedule("dlv-3p", {
      carrier: { case: "thirdParty", value: { carrier: "Fabrikam Freight", trackingId: "FF-123" } },
      confirmationRequired: ConfirmationType.NONE,
      pickupTime: undefined,
    });
    expect(delivery.carrier).toMatchObject({ case: "thirdParty", value: { carrier: "Fabrikam Freight", trackingId: "FF-123" } });
    expect(delivery.pickupTime).toBeUndefined();
  });

  it("answers INVALID_ARGUMENT naming each bad field of a schedule", async () => {
    expect(
      await violatedFields(
        client.scheduleDelivery({
          deliveryId: "dlv.with.dots",
          ownerId: "",
          pickup: { latitude: 91, longitude: 0, altitude: 0 },
          dropoff: { latitude: 0, longitude: -181, altitude: 0 },
          deadline: inHours(-1),
          confirmationRequired: 99 as ConfirmationType,
          packages: [
            { packageId: "p 1", size: PackageSize.UNSPECIFIED, weightKg: 0, tag: "t".repeat(300) },
            { packageId: "p-2", size: PackageSize.SMALL, weightKg: 1001 },
            { packageId: "p-2", size: PackageSize.LARGE, weightKg: 2 },
          ],
          carrier: { case: "thirdParty", value: { carrier: "", trackingId: "x".repeat(200) } },
          pickupEta: { seconds: 0n, nanos: -1 },
        }),
      ),
    ).toEqual([
      "confirmation_required",
      "deadline",
      "delivery_id",
      "dropoff.longitude",
      "owner_id",
      "packages",
      "packages[0].package_id",
      "packages[0].size",
      "packages[0].tag",
      "packages[0].weight_kg",
      "packages[1].weight_kg",
      "pickup.latitude",
      "pickup_eta",
      "third_party.carrier",
      "third_party.tracking_id",
    ]);

    expect(await violatedFields(client.scheduleDelivery({}))).toEqual([
      "carrier",
      "confirmation_required",
      "deadline",
      "delivery_id",
      "dropoff",
      "owner_id",
      "packages",
      "pickup",
    ]);

    const tooMany = Array.from({ length: 11 }, (_, i) => ({ packageId: `p-${i}`, size: PackageSize.SMALL, weightKg: 1 }));
    expect(
      await violatedFields(
        client.scheduleDelivery(
          scheduleRequest("dlv-bad", { packages: tooMany, pickupTime: inHours(48), carrier: { case: "droneId", value: "" } }),
        ),
      ),
    ).toEqual(["drone_id", "packages", "pickup_time"]);
    await expectCode(client.getDelivery({ deliveryId: "dlv-bad" }), Code.NotFound);
  });

  it("reads a delivery, its owner and its status, and answers NOT_FOUND for an unknown one", async () => {
    const delivery = await schedule("dlv-read", { ownerId: "acct.with.dots" });
    expect(await client.getDeliveryOwner({ deliveryId: "dlv-read" })).toMatchObject({ deliveryId: "dlv-read", ownerId: "acct.with.dots" });
    const { status: current } = await client.getDeliveryStatus({ deliveryId: "dlv-read" });
    expect(current).toMatchObject({ deliveryId: "dlv-read", stage: DeliveryStage.CREATED });
    expect(current?.lastKnownLocation).toMatchObject(PICKUP);
    expect(current?.pickupEta).toEqual(delivery.pickupEta);
    expect(current?.deliveryEta).toEqual(delivery.deliveryEta);
    expect(current?.updateTime).toEqual(delivery.updateTime);

    const unknown = { deliveryId: "dlv-nobody" };
    await expectCode(client.getDelivery(unknown), Code.NotFound);
    await expectCode(client.getDeliveryOwner(unknown), Code.NotFound);
    await expectCode(client.getDeliveryStatus(unknown), Code.NotFound);
    await expectCode(client.getDeliveryHistory(unknown), Code.NotFound);
    await expectCode(client.rescheduleDelivery({ ...unknown, deadline: inHours(5), updateMask: { paths: ["deadline"] } }), Code.NotFound);
    await expectCode(client.cancelDelivery(unknown), Code.NotFound);
    await expectCode(client.failDelivery({ ...unknown, reason: "no drone" }), Code.NotFound);
    await expectCode(client.confirmDelivery({ ...unknown, confirmationType: ConfirmationType.SIGNATURE }), Code.NotFound);

    expect(await violatedFields(client.getDelivery({ deliveryId: "" }))).toEqual(["delivery_id"]);
    expect(await violatedFields(client.getDeliveryStatus({ deliveryId: "a.b" }))).toEqual(["delivery_id"]);
    expect(await violatedFields(client.getDeliveryOwner({ deliveryId: "x".repeat(129) }))).toEqual(["delivery_id"]);
    expect(await violatedFields(client.getDeliveryHistory({ deliveryId: "" }))).toEqual(["delivery_id"]);
  });

  it("reschedules: applies the masked fields, moves to Rescheduled once per change, and refuses an ended delivery", async () => {
    const created = await schedule("dlv-resched");
    const { delivery: moved } = await client.rescheduleDelivery({
      deliveryId: "dlv-resched",
      dropoff: ELSEWHERE,
      deadline: inHours(30),
      pickupTime: inHours(50), // not named by the mask: ignored
      updateMask: { paths: ["dropoff", "deadline"] },
    });
    expect(moved?.stage).toBe(DeliveryStage.RESCHEDULED);
    expect(moved?.dropoff).toMatchObject(ELSEWHERE);
    expect(moved?.pickupTime).toEqual(created.pickupTime);
    expect(moved?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.RESCHEDULED]);

    const { delivery: repeated } = await client.rescheduleDelivery({
      deliveryId: "dlv-resched",
      dropoff: ELSEWHERE,
      deadline: moved?.deadline,
      updateMask: { paths: ["dropoff", "deadline"] },
    });
    expect(repeated).toEqual(moved);

    const { delivery: later } = await client.rescheduleDelivery({
      deliveryId: "dlv-resched",
      pickupTime: undefined,
      updateMask: { paths: ["pickup_time"] },
    });
    expect(later?.pickupTime).toBeUndefined();
    expect(later?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.RESCHEDULED, DeliveryStage.RESCHEDULED]);

    await client.cancelDelivery({ deliveryId: "dlv-resched", reason: "changed my mind" });
    const refused = await expectCode(
      client.rescheduleDelivery({ deliveryId: "dlv-resched", deadline: inHours(40), updateMask: { paths: ["deadline"] } }),
      Code.FailedPrecondition,
    );
    expect(refused.findDetails(PreconditionFailureSchema)[0]?.violations[0]).toMatchObject({ type: "DELIVERY_STAGE", subject: "delivery:dlv-resched" });
  });

  it("answers INVALID_ARGUMENT naming each bad field of a reschedule", async () => {
    await schedule("dlv-resched-bad", { pickupTime: inHours(10) });
    const id = "dlv-resched-bad";
    expect(await violatedFields(client.rescheduleDelivery({ deliveryId: id }))).toEqual(["update_mask"]);
    expect(await violatedFields(client.rescheduleDelivery({ deliveryId: id, updateMask: { paths: ["owner_id"] } }))).toEqual(["update_mask"]);
    expect(
      await violatedFields(
        client.rescheduleDelivery({
          deliveryId: "",
          dropoff: { latitude: 0, longitude: 0, altitude: -5 },
          deadline: inHours(-2),
          updateMask: { paths: ["dropoff", "deadline"] },
        }),
      ),
    ).toEqual(["deadline", "delivery_id", "dropoff.altitude"]);
    expect(await violatedFields(client.rescheduleDelivery({ deliveryId: id, updateMask: { paths: ["dropoff", "deadline"] } }))).toEqual([
      "deadline",
      "dropoff",
    ]);
    expect(
      await violatedFields(
        client.rescheduleDelivery({ deliveryId: id, pickupTime: inHours(20), deadline: inHours(5), updateMask: { paths: ["pickup_time", "deadline"] } }),
      ),
    ).toEqual(["pickup_time"]);
    // Against the stored pickup time (10 h from now).
    expect(await violatedFields(client.rescheduleDelivery({ deliveryId: id, deadline: inHours(5), updateMask: { paths: ["deadline"] } }))).toEqual([
      "deadline",
    ]);
    expect(await violatedFields(client.rescheduleDelivery({ deliveryId: id, pickupTime: inHours(30), updateMask: { paths: ["pickup_time"] } }))).toEqual([
      "pickup_time",
    ]);
    const { delivery } = await client.getDelivery({ deliveryId: id });
    expect(delivery?.history).toHaveLength(1);
  });

  it("applies a reschedule once the drone is under way without moving the stage back", async () => {
    await schedule("dlv-underway");
    await arrangeStage("dlv-underway", DeliveryStage.HEADED_TO_PICKUP);
    const { delivery } = await client.rescheduleDelivery({ deliveryId: "dlv-underway", dropoff: ELSEWHERE, updateMask: { paths: ["dropoff"] } });
    expect(delivery?.stage).toBe(DeliveryStage.HEADED_TO_PICKUP);
    expect(delivery?.dropoff).toMatchObject(ELSEWHERE);
    expect(delivery?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP]);
    expect(timestampMs(delivery!.updateTime!)).toBeGreaterThanOrEqual(timestampMs(delivery!.history[1]!.changeTime!));
  });

  it("cancels logically, keeps a cancelled delivery as it is, and refuses to cancel an ended one", async () => {
    await schedule("dlv-cancel");
    const { delivery } = await client.cancelDelivery({ deliveryId: "dlv-cancel", reason: "no longer needed" });
    expect(delivery).toMatchObject({ stage: DeliveryStage.CANCELLED, endReason: "no longer needed" });
    expect(delivery?.history.at(-1)).toMatchObject({ stage: DeliveryStage.CANCELLED, reason: "no longer needed" });

    const again = await client.cancelDelivery({ deliveryId: "dlv-cancel", reason: "another reason" });
    expect(again.delivery).toEqual(delivery);
    expect((await client.getDelivery({ deliveryId: "dlv-cancel" })).delivery).toEqual(delivery);

    await schedule("dlv-cancel-failed");
    await client.failDelivery({ deliveryId: "dlv-cancel-failed", reason: "no drone available" });
    await expectCode(client.cancelDelivery({ deliveryId: "dlv-cancel-failed" }), Code.FailedPrecondition);

    await schedule("dlv-cancel-done");
    await client.confirmDelivery({ deliveryId: "dlv-cancel-done", confirmationType: ConfirmationType.SIGNATURE });
    await expectCode(client.cancelDelivery({ deliveryId: "dlv-cancel-done" }), Code.FailedPrecondition);

    expect(await violatedFields(client.cancelDelivery({ deliveryId: "dlv-cancel", reason: "r".repeat(1025) }))).toEqual(["reason"]);
  });

  it("fails a delivery with a reason, keeps a failed one as it is, and refuses an ended one", async () => {
    await schedule("dlv-fail");
    expect(await violatedFields(client.failDelivery({ deliveryId: "dlv-fail" }))).toEqual(["reason"]);
    expect(await violatedFields(client.failDelivery({ deliveryId: "dlv-fail", reason: "r".repeat(1025) }))).toEqual(["reason"]);

    const { delivery } = await client.failDelivery({ deliveryId: "dlv-fail", reason: "drone assignment failed" });
    expect(delivery).toMatchObject({ stage: DeliveryStage.FAILED, endReason: "drone assignment failed" });
    expect(delivery?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.FAILED]);
    expect((await client.failDelivery({ deliveryId: "dlv-fail", reason: "again" })).delivery).toEqual(delivery);

    await schedule("dlv-fail-cancelled");
    await client.cancelDelivery({ deliveryId: "dlv-fail-cancelled" });
    await expectCode(client.failDelivery({ deliveryId: "dlv-fail-cancelled", reason: "late" }), Code.FailedPrecondition);
  });

  it("confirms receipt with the required type, which completes the delivery", async () => {
    await schedule("dlv-confirm");
    const wrongType = await expectCode(
      client.confirmDelivery({ deliveryId: "dlv-confirm", confirmationType: ConfirmationType.PIN }),
      Code.FailedPrecondition,
    );
    expect(wrongType.findDetails(PreconditionFailureSchema)[0]?.violations[0]?.type).toBe("CONFIRMATION_TYPE");
    expect(
      await violatedFields(
        client.confirmDelivery({ deliveryId: "dlv-confirm", confirmTime: inHours(1), proofReference: "p".repeat(1025) }),
      ),
    ).toEqual(["confirm_time", "confirmation_type", "proof_reference"]);
    expect(await violatedFields(client.confirmDelivery({ deliveryId: "dlv-confirm", confirmationType: 9 as ConfirmationType }))).toEqual([
      "confirmation_type",
    ]);

    const { delivery } = await client.confirmDelivery({
      deliveryId: "dlv-confirm",
      confirmationType: ConfirmationType.SIGNATURE,
      proofReference: "sig-42",
    });
    expect(delivery?.stage).toBe(DeliveryStage.COMPLETED);
    expect(delivery?.confirmation).toMatchObject({ type: ConfirmationType.SIGNATURE, proofReference: "sig-42" });
    expect(delivery?.confirmation?.confirmTime).toBeDefined();
    expect(delivery?.lastKnownLocation).toMatchObject(DROPOFF);
    expect(delivery?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.COMPLETED]);

    const again = await client.confirmDelivery({ deliveryId: "dlv-confirm", confirmationType: ConfirmationType.SIGNATURE, proofReference: "sig-42" });
    expect(again.delivery).toEqual(delivery);
    await expectCode(
      client.confirmDelivery({ deliveryId: "dlv-confirm", confirmationType: ConfirmationType.SIGNATURE, proofReference: "sig-43" }),
      Code.FailedPrecondition,
    );

    const { status: done } = await client.getDeliveryStatus({ deliveryId: "dlv-confirm" });
    expect(done?.stage).toBe(DeliveryStage.COMPLETED);
    expect(done?.pickupEta).toBeUndefined();
    expect(done?.deliveryEta).toBeUndefined();

    await schedule("dlv-confirm-cancelled");
    await client.cancelDelivery({ deliveryId: "dlv-confirm-cancelled" });
    await expectCode(
      client.confirmDelivery({ deliveryId: "dlv-confirm-cancelled", confirmationType: ConfirmationType.SIGNATURE }),
      Code.FailedPrecondition,
    );

    const at = new Date(Date.now() - 5 * 60_000);
    await schedule("dlv-confirm-at", { confirmationRequired: ConfirmationType.NONE });
    const { delivery: timed } = await client.confirmDelivery({
      deliveryId: "dlv-confirm-at",
      confirmationType: ConfirmationType.NONE,
      confirmTime: timestampFromDate(at),
    });
    expect(timestampDate(timed!.confirmation!.confirmTime!)).toEqual(at);
  });

  it("returns the status events of the stage history, oldest first, from the history subscriber", async () => {
    const created = await schedule("dlv-history");
    await client.rescheduleDelivery({ deliveryId: "dlv-history", dropoff: ELSEWHERE, updateMask: { paths: ["dropoff"] } });
    const { delivery } = await client.cancelDelivery({ deliveryId: "dlv-history", reason: "moved away" });
    const events = await historyOf("dlv-history", 3);
    expect(events.map((e) => [e.previousStage, e.stage])).toEqual([
      [DeliveryStage.UNSPECIFIED, DeliveryStage.CREATED],
      [DeliveryStage.CREATED, DeliveryStage.RESCHEDULED],
      [DeliveryStage.RESCHEDULED, DeliveryStage.CANCELLED],
    ]);
    for (const event of events) expect(event).toMatchObject({ deliveryId: "dlv-history", ownerId: "acct-demo", droneId: "drone-7" });
    expect(events.map((e) => e.eventTime)).toEqual(delivery?.history.map((h) => h.changeTime));
    expect(events[0]?.eventTime).toEqual(created.createTime);
    expect(events[0]?.location).toMatchObject(PICKUP);
    // Each event carries the ETAs known when it was published: Created those of the request.
    expect(events[0]).toMatchObject({ pickupEta: created.pickupEta, deliveryEta: created.deliveryEta });
    expect(events[2]?.reason).toBe("moved away");
    expect(events[2]?.location).toEqual(delivery?.lastKnownLocation);
    expect(events[2]?.pickupEta).toBeUndefined();
    expect(events[2]?.deliveryEta).toBeUndefined();
  });

  it("lists an owner's deliveries newest first, a page at a time", async () => {
    const owner = "acct.list.many";
    const ids = Array.from({ length: 45 }, (_, i) => `dlv-list-${String(i).padStart(2, "0")}`);
    for (let i = 0; i < ids.length; i += 15) {
      await Promise.all(ids.slice(i, i + 15).map((id) => schedule(id, { ownerId: owner })));
    }
    await schedule("dlv-list-prefix-owner", { ownerId: "acct.list" });

    const seen: Delivery[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listDeliveries({ ownerId: owner, pageSize: 7, pageToken });
      expect(page.deliveries.length).toBeLessThanOrEqual(7);
      seen.push(...page.deliveries);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(pages).toBe(7);
    expect(seen.map((d) => d.deliveryId).sort()).toEqual(ids);
    const order = [...seen].sort((a, b) => timestampMs(b.createTime!) - timestampMs(a.createTime!) || (a.deliveryId < b.deliveryId ? -1 : 1));
    expect(seen.map((d) => d.deliveryId)).toEqual(order.map((d) => d.deliveryId));

    const firstPage = await client.listDeliveries({ ownerId: owner });
    expect(firstPage.deliveries.map((d) => d.deliveryId)).toEqual(order.slice(0, 20).map((d) => d.deliveryId));
    const all = await client.listDeliveries({ ownerId: owner, pageSize: 100 });
    expect(all.deliveries).toHaveLength(45);
    expect(all.nextPageToken).toBe("");

    const other = await client.listDeliveries({ ownerId: "acct.list" });
    expect(other.deliveries.map((d) => d.deliveryId)).toEqual(["dlv-list-prefix-owner"]);
    expect(await client.listDeliveries({ ownerId: "acct-without-deliveries" })).toMatchObject({ deliveries: [], nextPageToken: "" });

    expect(await violatedFields(client.listDeliveries({ ownerId: "acct.list", pageToken: firstPage.nextPageToken }))).toEqual(["page_token"]);
    expect(await violatedFields(client.listDeliveries({ ownerId: owner, pageToken: "garbage!" }))).toEqual(["page_token"]);
    expect(await violatedFields(client.listDeliveries({ ownerId: owner, pageToken: "eyJ2IjoxfQ" }))).toEqual(["page_token"]);
    expect(await violatedFields(client.listDeliveries({ ownerId: owner, pageSize: 101 }))).toEqual(["page_size"]);
    expect(await violatedFields(client.listDeliveries({ ownerId: "", pageSize: -1 }))).toEqual(["owner_id", "page_size"]);
  });

  it("counts an owner's deliveries of a month from the stored records", async () => {
    const owner = "acct-summary";
    const made = await Promise.all(["a", "b", "c", "d", "e"].map((s) => schedule(`dlv-sum-${s}`, { ownerId: owner })));
    await client.confirmDelivery({ deliveryId: "dlv-sum-a", confirmationType: ConfirmationType.SIGNATURE });
    await client.cancelDelivery({ deliveryId: "dlv-sum-b" });
    await client.failDelivery({ deliveryId: "dlv-sum-c", reason: "no drone" });
    await client.rescheduleDelivery({ deliveryId: "dlv-sum-d", deadline: inHours(30), updateMask: { paths: ["deadline"] } });

    const createdAt = timestampDate(made[0]!.createTime!);
    const month = { year: createdAt.getUTCFullYear(), month: createdAt.getUTCMonth() + 1 };
    const inMonth = (d: Delivery) => {
      const at = timestampDate(d.createTime!);
      return at.getUTCFullYear() === month.year && at.getUTCMonth() + 1 === month.month;
    };
    const expectedIds = made.filter(inMonth).map((d) => d.deliveryId);
    const count = (ids: string[]) => BigInt(ids.filter((id) => expectedIds.includes(id)).length);
    const summary = await client.getDeliverySummary({ ownerId: owner, month });
    expect(summary).toMatchObject({
      ownerId: owner,
      month,
      deliveryCount: BigInt(expectedIds.length),
      completedCount: count(["dlv-sum-a"]),
      cancelledCount: count(["dlv-sum-b"]),
      failedCount: count(["dlv-sum-c"]),
    });
    expect(summary.deliveryCount).toBeGreaterThan(0n);

    const empty = await client.getDeliverySummary({ ownerId: owner, month: { year: 2001, month: 2 } });
    expect(empty).toMatchObject({ deliveryCount: 0n, completedCount: 0n, cancelledCount: 0n, failedCount: 0n });

    expect(await violatedFields(client.getDeliverySummary({ ownerId: owner }))).toEqual(["month"]);
    expect(await violatedFields(client.getDeliverySummary({ ownerId: "", month: { year: 1999, month: 13 } }))).toEqual([
      "month.month",
      "month.year",
      "owner_id",
    ]);
  });

  it("decides a cancel racing a confirm by revision: one final stage, one matching history entry", async () => {
    for (const id of ["dlv-race-1", "dlv-race-2", "dlv-race-3"]) {
      await schedule(id);
      const calls = Array.from({ length: 8 }, (_, i) =>
        (i % 2 === 0
          ? client.cancelDelivery({ deliveryId: id, reason: "race" })
          : client.confirmDelivery({ deliveryId: id, confirmationType: ConfirmationType.SIGNATURE, proofReference: "sig" })
        ).then(
          (r) => ({ kind: i % 2 === 0 ? "cancel" : "confirm", stage: r.delivery?.stage }),
          (e: ConnectError) => ({ kind: i % 2 === 0 ? "cancel" : "confirm", code: e.code }),
        ),
      );
      const results = await Promise.all(calls);
      const { delivery } = await client.getDelivery({ deliveryId: id });
      const final = delivery!.stage;
      expect([DeliveryStage.CANCELLED, DeliveryStage.COMPLETED]).toContain(final);
      const winner = final === DeliveryStage.CANCELLED ? "cancel" : "confirm";
      for (const r of results) {
        if (r.kind === winner) expect(r).toMatchObject({ stage: final });
        else expect(r).toMatchObject({ code: Code.FailedPrecondition });
      }
      expect(delivery!.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, final]);
      expect(delivery!.confirmation === undefined).toBe(final === DeliveryStage.CANCELLED);
    }
  });

  it("adds one history entry for several identical reschedules at once, and keeps every different one", async () => {
    await schedule("dlv-race-resched");
    const deadline = inHours(36);
    const same = await Promise.all(
      Array.from({ length: 8 }, () =>
        client.rescheduleDelivery({ deliveryId: "dlv-race-resched", deadline, dropoff: ELSEWHERE, updateMask: { paths: ["deadline", "dropoff"] } }),
      ),
    );
    const { delivery } = await client.getDelivery({ deliveryId: "dlv-race-resched" });
    expect(delivery?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.RESCHEDULED]);
    for (const r of same) expect(r.delivery).toEqual(delivery);

    await Promise.all(
      [40, 41, 42, 43].map((h) => client.rescheduleDelivery({ deliveryId: "dlv-race-resched", deadline: inHours(h), updateMask: { paths: ["deadline"] } })),
    );
    const { delivery: after } = await client.getDelivery({ deliveryId: "dlv-race-resched" });
    expect(after?.history.filter((h) => h.stage === DeliveryStage.RESCHEDULED)).toHaveLength(5);
  });

  it("decides concurrent schedules of one id with different content: one wins, the rest agree or conflict", async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        client
          .scheduleDelivery(scheduleRequest("dlv-race-sched", { expedited: i % 2 === 0 }))
          .then((r) => ({ expedited: r.delivery?.expedited, created: r.created }), (e: ConnectError) => ({ code: e.code })),
      ),
    );
    const { delivery } = await client.getDelivery({ deliveryId: "dlv-race-sched" });
    expect(results.filter((r) => "created" in r && r.created)).toHaveLength(1);
    for (const r of results) {
      if ("code" in r) expect(r.code).toBe(Code.AlreadyExists);
      else expect(r.expedited).toBe(delivery?.expedited);
    }
    const listed = await client.listDeliveries({ ownerId: "acct-demo", pageSize: 100 });
    expect(listed.deliveries.filter((d) => d.deliveryId === "dlv-race-sched")).toHaveLength(1);
  });

  it("restores a missing owner index entry when a schedule is repeated", async () => {
    const request = scheduleRequest("dlv-reindex", { ownerId: "acct-reindex" });
    const { delivery } = await client.scheduleDelivery(request);
    await store.ownerIndex.delete(ownerIndexKey("acct-reindex", positionOf(delivery!)));
    expect((await client.listDeliveries({ ownerId: "acct-reindex" })).deliveries).toEqual([]);
    expect((await client.scheduleDelivery(request)).created).toBe(false);
    expect((await client.listDeliveries({ ownerId: "acct-reindex" })).deliveries).toEqual([delivery]);
  });

  it("watches a delivery: the current status, then its changes until it ends; NOT_FOUND when unknown", async () => {
    await schedule("dlv-watch");
    const updates = client.watchDelivery({ deliveryId: "dlv-watch" })[Symbol.asyncIterator]();
    const first = await updates.next();
    expect(first.value?.update).toMatchObject({ case: "statusEvent", value: { deliveryId: "dlv-watch", stage: DeliveryStage.CREATED } });
    await client.cancelDelivery({ deliveryId: "dlv-watch", reason: "watched" });
    const rest: WatchDeliveryResponse[] = [];
    for (let next = await updates.next(); !next.done; next = await updates.next()) rest.push(next.value);
    expect(rest.map((u) => u.update.case === "statusEvent" && u.update.value.stage)).toEqual([DeliveryStage.CANCELLED]);
    expect(rest[0]!.sequence).toBeGreaterThan(first.value!.sequence);

    // An ended delivery: its status, then the end.
    const ended = await collect(client.watchDelivery({ deliveryId: "dlv-watch" }));
    expect(ended.map((u) => u.update.case === "statusEvent" && u.update.value.stage)).toEqual([DeliveryStage.CANCELLED]);

    await expectCode(collect(client.watchDelivery({ deliveryId: "dlv-watch-nobody" })), Code.NotFound);
    expect(await violatedFields(collect(client.watchDelivery({ deliveryId: "bad id" })))).toEqual(["delivery_id"]);
  });

  it("reports SERVING and describes itself by reflection", async () => {
    expect(await healthStatus(service.address)).toBe("SERVING");
    expect(await healthStatus(service.address, "dronedelivery.delivery.v1.DeliveryService")).toBe("SERVING");
    expect(await reflectionServices(service.address)).toContain("dronedelivery.delivery.v1.DeliveryService");
    const files = await reflectionFilesFor(service.address, "dronedelivery.delivery.v1.DeliveryService");
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        "dronedelivery/delivery/v1/delivery_service.proto",
        "dronedelivery/delivery/v1/delivery.proto",
        "dronedelivery/delivery/v1/delivery_events.proto",
      ]),
    );
  });

  it("keeps its data across a restart", async () => {
    const owner = "acct.durable";
    const durable = scheduleRequest("dlv-durable-1", { ownerId: owner });
    await client.scheduleDelivery(durable);
    await schedule("dlv-durable-2", { ownerId: owner });
    await schedule("dlv-durable-3", { ownerId: owner });
    await client.cancelDelivery({ deliveryId: "dlv-durable-2", reason: "kept" });
    const before = await client.getDelivery({ deliveryId: "dlv-durable-2" });
    const historyBefore = await historyOf("dlv-durable-2", 2);
    const firstPage = await client.listDeliveries({ ownerId: owner, pageSize: 2 });
    const rest = await client.listDeliveries({ ownerId: owner, pageSize: 2, pageToken: firstPage.nextPageToken });

    const port = service.port;
    client.close();
    await service.stop();
    service = await startTestService(deliveryModule, nats.url, { port });
    client = createClient(DeliveryService, { address: service.address });

    expect(await client.getDelivery({ deliveryId: "dlv-durable-2" })).toEqual(before);
    expect((await client.getDeliveryHistory({ deliveryId: "dlv-durable-2" })).events).toEqual(historyBefore);
    expect(await client.listDeliveries({ ownerId: owner, pageSize: 2 })).toEqual(firstPage);
    expect(await client.listDeliveries({ ownerId: owner, pageSize: 2, pageToken: firstPage.nextPageToken })).toEqual(rest);
    const again = await client.scheduleDelivery(durable);
    expect(again.created).toBe(false);
  });
});
