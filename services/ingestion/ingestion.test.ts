// The Ingestion service over real gRPC, publishing to a real JetStream.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import type { JetStreamManager, NatsConnection } from "nats";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import {
  CancelDeliveryCommandSchema,
  RescheduleDeliveryCommandSchema,
  ScheduleDeliveryCommandSchema,
} from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import {
  IngestionService,
  ScheduleDeliveryRequestSchema,
  type ScheduleDeliveryRequest,
} from "../../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { createClient, fieldViolations, type Client } from "../../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../../lib/nats/connection.js";
import { decodeMessage, MESSAGE_TYPE_HEADER } from "../../lib/nats/messages.js";
import { ensureStreams, STREAMS } from "../../lib/nats/streams.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { healthStatus, reflectionServices } from "../../test/harness/grpc-probes.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { ingestionModule } from "./module.js";
import { rpcError } from "../../test/harness/rpc.js";

let nats: TestNatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let service: RunningService;
let client: Client<typeof IngestionService>;
const STREAM = STREAMS.DELIVERY_REQUESTS.name;

const inOneDay = () => timestampFromDate(new Date(Date.now() + 86_400_000));

/** A valid request under `key`; `change` adjusts it. */
function request(key: string, change: (r: ScheduleDeliveryRequest) => void = () => {}): ScheduleDeliveryRequest {
  const r = create(ScheduleDeliveryRequestSchema, {
    idempotencyKey: key,
    ownerId: "acct-demo",
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff: { latitude: 47.62, longitude: -122.35 },
    deadline: inOneDay(),
    confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: `pkg-${key}`, size: PackageSize.SMALL, weightKg: 1.5, tag: "books" }],
  });
  change(r);
  return r;
}


/** Every message stored on `subject`, in order. */
async function storedOn(subject: string) {
  const info = await jsm.streams.info(STREAM);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const msg = await jsm.streams.getMessage(STREAM, { seq }).catch(() => undefined);
    if (msg && msg.subject === subject) out.push(msg);
  }
  return out;
}

/** Retries `fn` until it succeeds (the connection reconnects after a server restart). */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connectNats({ url: nats.url, name: "ingestion-test" });
  jsm = await nc.jetstreamManager();
  service = await startTestService(ingestionModule, nats.url);
  client = createClient(IngestionService, { address: service.address });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await drainQuietly(nc);
  await nats?.stop();
});

beforeEach(async () => {
  await ensureStreams(jsm);
});

describe("ingestion service", () => {
  it("accepts a request only once it is stored, with type header and message id", async () => {
    const answer = await client.scheduleDelivery(request("k-accept"));
    expect(answer.deliveryId).toMatch(/^dlv-[0-9a-f]{24}$/);
    expect(answer.duplicate).toBe(false);

    const stored = await storedOn(`delivery.request.schedule.${answer.deliveryId}`);
    expect(stored).toHaveLength(1);
    const msg = stored[0]!;
    expect(msg.header.get(MESSAGE_TYPE_HEADER)).toBe("dronedelivery.ingestion.v1.ScheduleDeliveryCommand");
    expect(msg.header.get("Nats-Msg-Id")).toBe(`schedule:${answer.deliveryId}`);
    const command = decodeMessage(msg, ScheduleDeliveryCommandSchema);
    expect(command).toMatchObject({ deliveryId: answer.deliveryId, ownerId: "acct-demo", idempotencyKey: "k-accept" });
    expect(command.packages[0]?.weightKg).toBe(1.5);
    expect(command.acceptTime).toBeDefined();
  });

  it("stores a request sent twice with one idempotency key once, and answers the same id", async () => {
    const first = await client.scheduleDelivery(request("k-twice"));
    const second = await client.scheduleDelivery(request("k-twice"));
    expect(second.deliveryId).toBe(first.deliveryId);
    expect(second.duplicate).toBe(true);
    expect(await storedOn(`delivery.request.schedule.${first.deliveryId}`)).toHaveLength(1);

    const other = await client.scheduleDelivery(request("k-other"));
    expect(other.deliveryId).not.toBe(first.deliveryId);
    const otherOwner = await client.scheduleDelivery(request("k-twice", (r) => (r.ownerId = "acct-contoso")));
    expect(otherOwner.deliveryId).not.toBe(first.deliveryId);
  });

  it("answers UNAVAILABLE when JetStream cannot store the request, and a retry with the same key succeeds once", async () => {
    await jsm.streams.delete(STREAM);
    const error = await rpcError(client.scheduleDelivery(request("k-outage")));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.message).toContain("same idempotency key");

    await ensureStreams(jsm);
    const retried = await client.scheduleDelivery(request("k-outage"));
    const again = await client.scheduleDelivery(request("k-outage"));
    expect(again.deliveryId).toBe(retried.deliveryId);
    expect(await storedOn(`delivery.request.schedule.${retried.deliveryId}`)).toHaveLength(1);
  });

  it("names every bad field of a request", async () => {
    const error = await rpcError(
      client.scheduleDelivery({
        idempotencyKey: "",
        ownerId: "",
        pickup: { latitude: 91, longitude: 0 },
        deadline: timestampFromDate(new Date(Date.now() - 1_000)),
        confirmationRequired: 99 as ConfirmationType,
        packages: [
          { packageId: "p1", size: PackageSize.SMALL, weightKg: -1 },
          { packageId: "p1", size: PackageSize.UNSPECIFIED, weightKg: 1, tag: "x".repeat(300) },
        ],
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(error).map((v) => v.field).sort()).toEqual(
      [
        "confirmation_required",
        "deadline",
        "dropoff",
        "idempotency_key",
        "owner_id",
        "packages",
        "packages[0].weight_kg",
        "packages[1].size",
        "packages[1].tag",
        "pickup.latitude",
      ].sort(),
    );
    const late = await rpcError(
      client.scheduleDelivery(request("k-late", (r) => (r.pickupTime = timestampFromDate(new Date(Date.now() + 2 * 86_400_000))))),
    );
    expect(fieldViolations(late)).toEqual([{ field: "pickup_time", description: "must not lie after deadline" }]);
    expect(fieldViolations(await rpcError(client.scheduleDelivery(request("k-none", (r) => (r.packages = [])))))).toEqual([
      { field: "packages", description: "must contain at least 1 item(s)" },
    ]);
  });

  it("publishes reschedule commands, deduplicating the same change", async () => {
    const change = {
      deliveryId: "dlv-resched",
      ownerId: "acct-demo",
      deadline: inOneDay(),
      updateMask: { paths: ["deadline"] },
    };
    const first = await client.rescheduleDelivery(change);
    const repeat = await client.rescheduleDelivery(change);
    expect(first.duplicate).toBe(false);
    expect(repeat.duplicate).toBe(true);
    const other = await client.rescheduleDelivery({ ...change, dropoff: { latitude: 1, longitude: 2 }, updateMask: { paths: ["dropoff"] } });
    expect(other.duplicate).toBe(false);
    const stored = await storedOn("delivery.request.reschedule.dlv-resched");
    expect(stored).toHaveLength(2);
    const command = decodeMessage(stored[1]!, RescheduleDeliveryCommandSchema);
    expect(command.updateMask?.paths).toEqual(["dropoff"]);
    expect(command.deadline).toBeUndefined();

    const bad = await rpcError(client.rescheduleDelivery({ deliveryId: "has.dot", ownerId: "o", updateMask: { paths: ["owner_id"] } }));
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual(["delivery_id", "update_mask"]);
  });

  it("publishes a delivery's cancellation once", async () => {
    const first = await client.cancelDelivery({ deliveryId: "dlv-cancel", ownerId: "acct-demo", reason: "changed my mind" });
    const repeat = await client.cancelDelivery({ deliveryId: "dlv-cancel", ownerId: "acct-demo", reason: "changed my mind" });
    expect([first.duplicate, repeat.duplicate]).toEqual([false, true]);
    const stored = await storedOn("delivery.request.cancel.dlv-cancel");
    expect(stored).toHaveLength(1);
    expect(decodeMessage(stored[0]!, CancelDeliveryCommandSchema).reason).toBe("changed my mind");
  });

  it("keeps accepted requests across a restart of nats-server", async () => {
    const answer = await client.scheduleDelivery(request("k-durable", (r) => (r.pickupTime = timestampNow())));
    await nats.restart();
    await eventually(() => ensureStreams(jsm));
    const stored = await storedOn(`delivery.request.schedule.${answer.deliveryId}`);
    expect(stored).toHaveLength(1);
    // The service reconnects by itself and keeps accepting.
    const after = await client.scheduleDelivery(request("k-after-restart"), { timeoutMs: 10_000 });
    expect(after.deliveryId).toMatch(/^dlv-/);
  });

  it("reports SERVING and lists itself by reflection", async () => {
    expect(await healthStatus(service.address)).toBe("SERVING");
    expect(await reflectionServices(service.address)).toContain("dronedelivery.ingestion.v1.IngestionService");
  });
});

