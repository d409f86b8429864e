// The public API v2 beside v1 in one gateway process: REST v2 (202 + Location, `:cancel`, PATCH,
// Server-Sent Events), Connect and gRPC clients of v2, and the same deliveries read through v1,
// in front of the whole platform running in-process over a private nats-server.
import { durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeliveryApiService } from "../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import {
  ConfirmationType,
  DeliveryStage,
  ParcelSize,
  Priority,
} from "../gen/dronedelivery/api/v2/resources_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import type { RunningGateway } from "./module.js";
import { startGatewayStack, type GatewayStack } from "./test-stack.js";
import { badRequestFields as fieldsOf, connectError, restCall, type Json, type RestCallOptions } from "./test-calls.js";

const SECRET = "v2-test-secret";

let gateway: RunningGateway;
let demoToken: string;
let contosoToken: string;

type ApiV2 = Client<typeof DeliveryApiService>;

const PICKUP = { latitude: 47.61, longitude: -122.33 };
const NEAR_DROPOFF = { latitude: 47.63, longitude: -122.36 };
/** About 230 km away: the drone is still on its way long after the test has read its status. */
const FAR_DROPOFF = { latitude: 45.52, longitude: -122.68 };

/** One deadline for every request, so that a request resent with its key is the same request. */
const DEADLINE = new Date(Date.now() + 86_400_000).toISOString();

function scheduleBody(key: string, overrides: Json = {}): Json {
  return {
    pickup: PICKUP,
    dropoff: NEAR_DROPOFF,
    deadline: DEADLINE,
    priority: "PRIORITY_EXPEDITED",
    parcels: [
      { parcelId: `${key}-a`, size: "PARCEL_SIZE_SMALL", weightKg: 1.2, tag: "fragile" },
      { parcelId: `${key}-b`, size: "PARCEL_SIZE_MEDIUM", weightKg: 0.8 },
    ],
    ...overrides,
  };
}


/** Schedules over REST v2 with an idempotency key; the new delivery's id. */
async function schedule(key: string, overrides: Json = {}): Promise<string> {
  const res = await call("POST", "/v2/deliveries", {
    token: demoToken,
    body: scheduleBody(key, overrides),
    headers: { "idempotency-key": key },
  });
  expect(res.status).toBe(202);
  return res.json.deliveryId as string;
}

/** Waits until the workflow has created the delivery and `path` reads it. */
/** Reads a delivery once the workflow has created it (past REQUESTED, readable from the accept). */
async function readWhenCreated(path: string): Promise<Json> {
  return vi.waitFor(
    async () => {
      const res = await call("GET", path, { token: demoToken });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      if (res.json.stage === "DELIVERY_STAGE_REQUESTED") throw new Error("not created yet");
      return res.json;
    },
    { timeout: 20_000, interval: 100 },
  );
}


const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });


const call = (method: string, path: string, options?: RestCallOptions) => restCall(gateway.url, method, path, options);

let stack: GatewayStack | undefined;
let connectV2: ApiV2;

beforeAll(async () => {
  stack = await startGatewayStack(SECRET);
  ({ gateway, demoToken, contosoToken } = stack);
  connectV2 = createClient(DeliveryApiService, createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1", useHttpGet: true }));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("API v2 beside v1", () => {
  it("schedules a two-parcel delivery over REST v2 and shows it through v2 and v1", async () => {
    const res = await call("POST", "/v2/deliveries", {
      token: demoToken,
      body: scheduleBody("v2-two"),
      headers: { "idempotency-key": "v2-two" },
    });
    expect(res.status).toBe(202);
    const id = res.json.deliveryId as string;
    expect(id).toEqual(expect.any(String));
    expect(res.json.acceptTime).toEqual(expect.any(String));
    expect(res.headers.get("location")).toBe(`/v2/deliveries/${id}`);
    const again = await call("POST", "/v2/deliveries", {
      token: demoToken,
      body: scheduleBody("v2-two"),
      headers: { "idempotency-key": "v2-two" },
    });
    expect(again.json.deliveryId).toBe(id);

    // v2 shows both parcels, the priority and the carrier as a oneof.
    const v2 = await readWhenCreated(res.headers.get("location") ?? "");
    expect(v2).toMatchObject({
      deliveryId: id,
      pickup: PICKUP,
      priority: "PRIORITY_EXPEDITED",
      confirmationRequired: "CONFIRMATION_TYPE_NONE",
      parcels: [
        { parcelId: "v2-two-a", size: "PARCEL_SIZE_SMALL", weightKg: 1.2, tag: "fragile" },
        { parcelId: "v2-two-b", size: "PARCEL_SIZE_MEDIUM", weightKg: 0.8 },
      ],
      drone: {},
    });
    expect(v2).not.toHaveProperty("thirdParty");
    expect(v2.stage).toMatch(/^DELIVERY_STAGE_/);

    // v1 reads the same delivery with its own shape: the first parcel, a flag and strings.
    const v1 = await call("GET", `/v1/deliveries/${id}`, { token: demoToken });
    expect(v1.status).toBe(200);
    expect(v1.json).toMatchObject({
      deliveryId: id,
      expedited: true,
      packageInfo: { packageId: "v2-two-a", size: "PACKAGE_SIZE_SMALL", weightKg: 1.2, tag: "fragile" },
      carrier: "drone",
    });
    expect(v1.json).not.toHaveProperty("parcels");

    const list = await call("GET", "/v2/deliveries?pageSize=100", { token: demoToken });
    expect(list.status).toBe(200);
    expect(list.json.deliveries.map((d: Json) => d.deliveryId)).toContain(id);
  });

  it("reports the status with a typed ETA, reschedules with PATCH and cancels with :cancel", async () => {
    const id = await schedule("v2-far", { dropoff: FAR_DROPOFF });
    await readWhenCreated(`/v2/deliveries/${id}`);
    const status = await vi.waitFor(
      async () => {
        const res = await call("GET", `/v2/deliveries/${id}/status`, { token: demoToken });
        if (!res.json?.eta?.dropoffTime) throw new Error(`no drop-off estimate yet: ${JSON.stringify(res.json)}`);
        return res.json;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(status.deliveryId).toBe(id);
    expect(Date.parse(status.eta.dropoffTime)).toBeGreaterThan(Date.now() - 1_000);
    expect(status.eta.remaining).toMatch(/^\d+(\.\d+)?s$/);
    expect(Number.parseFloat(status.eta.remaining)).toBeGreaterThan(0);
    expect(status).not.toHaveProperty("deliveryEta");

    const later = new Date(Date.now() + 2 * 86_400_000);
    const patched = await call("PATCH", `/v2/deliveries/${id}`, {
      token: demoToken,
      body: { deadline: later.toISOString(), updateMask: "deadline" },
    });
    expect(patched.status).toBe(202);
    expect(patched.json.deliveryId).toBe(id);
    await vi.waitFor(
      async () => {
        const d = await readWhenCreated(`/v2/deliveries/${id}`);
        if (Date.parse(d.deadline) !== later.getTime()) throw new Error(`deadline ${d.deadline}`);
      },
      { timeout: 20_000, interval: 100 },
    );

    const cancelled = await call("POST", `/v2/deliveries/${id}:cancel`, { token: demoToken, body: { reason: "changed my mind" } });
    expect(cancelled.status).toBe(202);
    expect(cancelled.json.deliveryId).toBe(id);
    const final = await vi.waitFor(
      async () => {
        const d = await readWhenCreated(`/v2/deliveries/${id}`);
        if (d.stage !== "DELIVERY_STAGE_CANCELLED") throw new Error(`stage ${d.stage}`);
        return d;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(final.endReason).toContain("changed my mind");
    const v1 = await call("GET", `/v1/deliveries/${id}`, { token: demoToken });
    expect(v1.json.stage).toBe("DELIVERY_STAGE_CANCELLED");
  });

  it("serves v2 over Connect and gRPC: schedule, read, status, history, cancel", async () => {
    const deadline = timestampFromDate(new Date(Date.now() + 86_400_000));
    // 6 kg is more than any drone of the test fleet carries: an outside carrier takes it.
    const accepted = await connectV2.scheduleDelivery(
      {
        idempotencyKey: "v2-connect-heavy",
        pickup: PICKUP,
        dropoff: FAR_DROPOFF,
        deadline,
        confirmationRequired: ConfirmationType.SIGNATURE,
        parcels: [
          { parcelId: "v2-connect-heavy-a", size: ParcelSize.LARGE, weightKg: 3 },
          { parcelId: "v2-connect-heavy-b", size: ParcelSize.LARGE, weightKg: 3 },
        ],
      },
      bearer(demoToken),
    );
    const { deliveryId } = accepted;
    const delivery = await vi.waitFor(
      async () => {
        const found = (await connectV2.getDelivery({ deliveryId }, bearer(demoToken))).delivery;
        if (found?.stage === DeliveryStage.REQUESTED) throw new Error("not created yet");
        return found;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(delivery).toMatchObject({
      deliveryId,
      priority: Priority.STANDARD,
      confirmationRequired: ConfirmationType.SIGNATURE,
      parcels: [{ parcelId: "v2-connect-heavy-a" }, { parcelId: "v2-connect-heavy-b" }],
    });
    expect(delivery?.carrier.case).toBe("thirdParty");
    if (delivery?.carrier.case === "thirdParty") {
      expect(delivery.carrier.value.name).not.toBe("");
      expect(delivery.carrier.value.trackingId).not.toBe("");
    }

    const grpcV2 = createClient(DeliveryApiService, createGrpcTransport({ baseUrl: gateway.grpcUrl }));
    const overGrpc = await grpcV2.getDelivery({ deliveryId }, bearer(demoToken));
    expect(overGrpc.delivery?.parcels.map((p) => p.parcelId)).toEqual(["v2-connect-heavy-a", "v2-connect-heavy-b"]);

    const { status } = await connectV2.getDeliveryStatus({ deliveryId }, bearer(demoToken));
    expect(status?.deliveryId).toBe(deliveryId);
    if (status?.eta?.dropoffTime) {
      expect(status.eta.remaining && durationMs(status.eta.remaining)).toBeGreaterThanOrEqual(0);
      expect(timestampDate(status.eta.dropoffTime).getTime()).toBeGreaterThan(0);
    }

    const history = await vi.waitFor(
      async () => {
        const { events } = await connectV2.getDeliveryHistory({ deliveryId }, bearer(demoToken));
        if (!events.some((e) => e.stage === DeliveryStage.CREATED)) throw new Error("not created yet");
        return events;
      },
      { timeout: 20_000, interval: 100 },
    );
    // Accepted (REQUESTED), then created by the workflow.
    expect(history.map((e) => e.stage).filter((s) => s !== DeliveryStage.REQUESTED)[0]).toBe(DeliveryStage.CREATED);

    const cancelled = await connectV2.cancelDelivery({ deliveryId, reason: "too heavy after all" }, bearer(demoToken));
    expect(cancelled.deliveryId).toBe(deliveryId);
    const final = await vi.waitFor(
      async () => {
        const d = (await connectV2.getDelivery({ deliveryId }, bearer(demoToken))).delivery;
        if (d?.stage !== DeliveryStage.CANCELLED) throw new Error(`stage ${d?.stage}`);
        return d;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(final.endReason).toContain("too heavy after all");
  });

  it("answers 400 with field violations in v2's names", async () => {
    const none = await call("POST", "/v2/deliveries", { token: demoToken, body: scheduleBody("v2-none", { parcels: [] }) });
    expect(none.status).toBe(400);
    expect(none.json.code).toBe("invalid_argument");
    expect(fieldsOf(none.json)).toEqual(["parcels"]);

    const eleven = Array.from({ length: 11 }, (_, i) => ({ parcelId: `v2-many-${i}`, size: "PARCEL_SIZE_SMALL", weightKg: 0.1 }));
    const tooMany = await call("POST", "/v2/deliveries", { token: demoToken, body: scheduleBody("v2-many", { parcels: eleven }) });
    expect(tooMany.status).toBe(400);
    expect(fieldsOf(tooMany.json)).toEqual(["parcels"]);

    const badParcels = await call("POST", "/v2/deliveries", {
      token: demoToken,
      body: scheduleBody("v2-bad", {
        pickup: { latitude: 200, longitude: -122.33 },
        parcels: [
          { parcelId: "v2-bad-a", size: "PARCEL_SIZE_SMALL", weightKg: 0 },
          { parcelId: "v2-bad-a", size: "PARCEL_SIZE_SMALL", weightKg: 1 },
        ],
      }),
    });
    expect(badParcels.status).toBe(400);
    // Distinct parcel ids are a rule of the parcels list, reported on it.
    expect(fieldsOf(badParcels.json)).toEqual(["parcels", "parcels[0].weight_kg", "pickup.latitude"]);
    const repeated = badParcels.json.details[0].fieldViolations.find((v: Json) => v.field === "parcels");
    expect(repeated.description).toContain("parcel_id");

    // v1's field is not part of v2.
    const v1Shape = await call("POST", "/v2/deliveries", {
      token: demoToken,
      body: { ...scheduleBody("v2-v1-shape"), packageInfo: { packageId: "p", size: "PACKAGE_SIZE_SMALL", weightKg: 1 } },
    });
    expect(v1Shape.status).toBe(400);
    expect(fieldsOf(v1Shape.json)).toEqual(["packageInfo"]);

    // A priority v2 does not define is refused, not quietly treated as Standard.
    const error = await connectError(
      connectV2.scheduleDelivery(
        {
          pickup: PICKUP,
          dropoff: NEAR_DROPOFF,
          deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
          priority: 7 as Priority,
          parcels: [{ parcelId: "v2-priority", size: ParcelSize.SMALL, weightKg: 1 }],
        },
        bearer(demoToken),
      ),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field))).toEqual(["priority"]);
  });

  it("answers 404 for another account's delivery on every v2 route", async () => {
    const id = await schedule("v2-owned");
    await readWhenCreated(`/v2/deliveries/${id}`);
    const attempts: [string, string, unknown?][] = [
      ["GET", `/v2/deliveries/${id}`],
      ["GET", `/v2/deliveries/${id}/status`],
      ["GET", `/v2/deliveries/${id}/history`],
      ["GET", `/v2/deliveries/${id}/events`],
      ["PATCH", `/v2/deliveries/${id}`, { deadline: new Date(Date.now() + 2 * 86_400_000).toISOString() }],
      ["POST", `/v2/deliveries/${id}:cancel`, { reason: "not mine" }],
      ["POST", `/v2/deliveries/${id}/confirmations`, { confirmationType: "CONFIRMATION_TYPE_NONE" }],
    ];
    for (const [method, path, body] of attempts) {
      const res = await call(method, path, { token: contosoToken, body });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.json.code).toBe("not_found");
    }
    const v1 = await call("GET", `/v1/deliveries/${id}`, { token: contosoToken });
    expect(v1.status).toBe(404);
    const theirs = await call("GET", "/v2/deliveries", { token: contosoToken });
    expect(theirs.json.deliveries ?? []).toEqual([]);
    const mine = await call("GET", `/v2/deliveries/${id}`, { token: demoToken });
    expect(mine.json.stage).not.toBe("DELIVERY_STAGE_CANCELLED");
  });

  it("streams /v2/.../events as Server-Sent Events until Completed, then records the confirmation", async () => {
    // Watched from its acceptance (readable at REQUESTED), with a drop-off 10 km away (a flight of
    // several seconds at the stack's time scale): the stream sees the flight however loaded the machine.
    const id = await schedule("v2-watched", { dropoff: { latitude: 47.7, longitude: -122.36 } });
    const res = await fetch(`${gateway.url}/v2/deliveries/${id}/events?includePositions=true`, {
      headers: { authorization: `Bearer ${demoToken}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text(); // the stream ends when the delivery's does
    const events = text
      .split("\n\n")
      .filter((block) => block.trim() !== "" && !block.startsWith(":"))
      .map((block) => ({ id: /^id: (\d+)$/m.exec(block)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null") as Json }));
    const stages = events.filter((e) => e.data.event).map((e) => e.data.event.stage as string);
    expect(stages.at(-1)).toBe("DELIVERY_STAGE_COMPLETED");
    expect(stages).toContain("DELIVERY_STAGE_HEADED_TO_DROPOFF");
    const positions = events.filter((e) => e.data.position).map((e) => e.data.position as Json);
    expect(positions.length).toBeGreaterThan(0);
    for (const p of positions) expect(p).toMatchObject({ location: { latitude: expect.any(Number) }, eventTime: expect.any(String) });
    for (const e of events) expect(e.id).toBe(e.data.sequence);

    // Resuming after the last change of stage yields nothing more.
    const lastId = events.filter((e) => e.data.event).at(-1)?.id ?? "0";
    const resumed = await fetch(`${gateway.url}/v2/deliveries/${id}/events`, {
      headers: { authorization: `Bearer ${demoToken}`, "last-event-id": lastId },
    });
    expect((await resumed.text()).split("\n\n").filter((b) => b.includes("\"event\""))).toEqual([]);

    // The confirmation answers the delivery itself, with the confirmation recorded.
    const confirmed = await call("POST", `/v2/deliveries/${id}/confirmations`, {
      token: demoToken,
      body: { confirmationType: "CONFIRMATION_TYPE_NONE", proofReference: "left at the door" },
    });
    expect(confirmed.status).toBe(200);
    expect(confirmed.json).toMatchObject({
      deliveryId: id,
      stage: "DELIVERY_STAGE_COMPLETED",
      confirmation: { type: "CONFIRMATION_TYPE_NONE", proofReference: "left at the door", confirmTime: expect.any(String) },
    });
    const v1 = await call("GET", `/v1/deliveries/${id}`, { token: demoToken });
    expect(v1.json.confirmTime).toBe(confirmed.json.confirmation.confirmTime);
  });

  it("keeps v1's routes and v2's apart", async () => {
    const v1Route = await call("POST", "/v2/deliveryrequests", { token: demoToken, body: {} });
    expect(v1Route.status).toBe(404);
    const wrongMethod = await call("DELETE", "/v2/deliveries/some-id", { token: demoToken });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("GET, PATCH");
    const unauthenticated = await call("GET", "/v2/deliveries");
    expect(unauthenticated.status).toBe(401);
  });
});
