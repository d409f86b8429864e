// The public API gateway end to end: Connect (JSON with GET, binary), gRPC-Web and gRPC clients
// against the gateway, in front of the whole platform running in-process over a private
// nats-server.
import http2 from "node:http2";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  DeliveryApiService,
  ScheduleDeliveryRequestSchema,
} from "../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { ConfirmationType, DeliveryStage, PackageSize } from "../gen/dronedelivery/api/v1/resources_pb.js";
import { BadRequestSchema, PreconditionFailureSchema } from "../gen/google/rpc/error_details_pb.js";
import type { RunningGateway } from "./module.js";
import { connectError } from "./test-calls.js";
import { startGatewayStack, type GatewayStack } from "./test-stack.js";
import { mintToken } from "./tokens.js";

const SECRET = "gateway-test-secret";

let gateway: RunningGateway;
let demoToken: string;
let contosoToken: string;

type Api = Client<typeof DeliveryApiService>;
const transports: Record<string, () => Transport> = {
  "connect json": () =>
    createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1", useHttpGet: true }),
  "connect binary": () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1", useBinaryFormat: true }),
  "grpc-web": () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
  grpc: () => createGrpcTransport({ baseUrl: gateway.grpcUrl }),
};
const api = (name: string): Api => {
  const transport = transports[name];
  if (!transport) throw new Error(`no transport ${name}`);
  return createClient(DeliveryApiService, transport());
};
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** One deadline for every request, so that a request resent with its key is the same request. */
const DEADLINE = timestampFromDate(new Date(Date.now() + 86_400_000));

function request(key: string, dropoff = { latitude: 47.63, longitude: -122.36 }): MessageInitShape<typeof ScheduleDeliveryRequestSchema> {
  return {
    idempotencyKey: key,
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff,
    deadline: DEADLINE,
    confirmationRequired: ConfirmationType.NONE,
    packageInfo: { packageId: `pkg-${key}`, size: PackageSize.SMALL, weightKg: 1.2, tag: "fragile" },
  };
}


/** Waits until the workflow has created the delivery (past REQUESTED, readable from the accept). */
async function created(client: Api, deliveryId: string) {
  return vi.waitFor(
    async () => {
      const { delivery } = await client.getDelivery({ deliveryId }, bearer(demoToken));
      if (delivery?.stage === DeliveryStage.REQUESTED) throw new Error("not created yet");
      return delivery;
    },
    { timeout: 20_000, interval: 100 },
  );
}

let stack: GatewayStack | undefined;

beforeAll(async () => {
  stack = await startGatewayStack(SECRET);
  ({ gateway, demoToken, contosoToken } = stack);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("gateway", () => {
  it("answers /healthz", async () => {
    const res = await fetch(`${gateway.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("answers /readyz with every internal service it calls SERVING", async () => {
    // Each probe has 1 s; on a loaded machine the first ones (new connections) may need longer.
    await vi.waitFor(
      async () => {
        const res = await fetch(`${gateway.url}/readyz`);
        expect(await res.json()).toEqual({ status: "ready", services: { ingestion: "SERVING", delivery: "SERVING" } });
        expect(res.status).toBe(200);
      },
      { timeout: 30_000, interval: 200 },
    );
  });

  it("serves /metrics on the admin port only, never on the public ones", async () => {
    const metrics = await fetch(gateway.metricsUrl);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("http_server_requests_total");
    expect(new URL(gateway.metricsUrl).port).not.toBe(new URL(gateway.url).port);
    const res = await fetch(`${gateway.url}/metrics`);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain("http_server_requests_total");
    const session = http2.connect(gateway.grpcUrl);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":method": "GET", ":path": "/metrics" });
        stream.on("response", (headers) => resolve(Number(headers[":status"])));
        stream.on("error", reject);
        stream.resume();
        stream.end();
      });
      expect(status).toBe(404);
    } finally {
      session.close();
    }
  });

  it("answers NotFound at once for the stream of an unknown or another account's delivery", async () => {
    const client = api("grpc");
    const { deliveryId } = await client.scheduleDelivery(request("watch-foreign"), bearer(demoToken));
    for (const [id, token] of [["dlv-000000000000000000000000", demoToken], [deliveryId, contosoToken]] as const) {
      const error = await connectError(
        (async () => {
          for await (const _ of client.watchDelivery({ deliveryId: id }, bearer(token))) break;
        })(),
      );
      expect(error.code).toBe(Code.NotFound);
    }
  });

  it("treats an unset confirmation type as none required", async () => {
    const client = api("connect json");
    const withoutConfirmation = create(ScheduleDeliveryRequestSchema, request("key-no-confirmation"));
    withoutConfirmation.confirmationRequired = ConfirmationType.UNSPECIFIED;
    const accepted = await client.scheduleDelivery(withoutConfirmation, bearer(demoToken));
    const delivery = await created(client, accepted.deliveryId);
    expect(delivery?.confirmationRequired).toBe(ConfirmationType.NONE);
  });

  describe.each(Object.keys(transports))("over %s", (name) => {
    it("schedules a delivery and reads it back", async () => {
      const client = api(name);
      const key = `key-${name.replace(/\W/g, "-")}`;
      const accepted = await client.scheduleDelivery(request(key), bearer(demoToken));
      expect(accepted.deliveryId).not.toBe("");
      expect(accepted.acceptTime).toBeDefined();

      const delivery = await created(client, accepted.deliveryId);
      expect(delivery).toMatchObject({
        deliveryId: accepted.deliveryId,
        pickup: { latitude: 47.61, longitude: -122.33 },
        confirmationRequired: ConfirmationType.NONE,
        packageInfo: { packageId: `pkg-${key}`, size: PackageSize.SMALL, weightKg: 1.2, tag: "fragile" },
        carrier: "drone",
        trackingId: "",
      });
      expect(delivery?.stage).not.toBe(DeliveryStage.UNSPECIFIED);

      const { status } = await client.getDeliveryStatus({ deliveryId: accepted.deliveryId }, bearer(demoToken));
      expect(status?.deliveryId).toBe(accepted.deliveryId);
      expect(status?.stage).not.toBe(DeliveryStage.UNSPECIFIED);

      const owner = await client.getDeliveryOwner({ deliveryId: accepted.deliveryId }, bearer(demoToken));
      expect(owner.ownerId).toBe("acct-demo");

      const listed = await client.listDeliveries({ pageSize: 100 }, bearer(demoToken));
      expect(listed.deliveries.map((d) => d.deliveryId)).toContain(accepted.deliveryId);

      const history = await vi.waitFor(
        async () => {
          const { events } = await client.getDeliveryHistory({ deliveryId: accepted.deliveryId }, bearer(demoToken));
          if (!events.some((e) => e.stage === DeliveryStage.CREATED)) throw new Error("not created yet");
          return events;
        },
        { timeout: 20_000, interval: 100 },
      );
      // Accepted (REQUESTED), then created by the workflow.
      expect(history.map((e) => e.stage).filter((s) => s !== DeliveryStage.REQUESTED)[0]).toBe(DeliveryStage.CREATED);
    });

    it("answers Unauthenticated without a token or with a bad one", async () => {
      const client = api(name);
      const forged = await mintToken("acct-demo", "another-secret");
      for (const options of [{}, bearer("not-a-jwt"), bearer(forged), { headers: { authorization: demoToken } }]) {
        const error = await connectError(client.listDeliveries({}, options));
        expect(error.code).toBe(Code.Unauthenticated);
      }
    });

    it("answers InvalidArgument naming the public fields", async () => {
      // No parcel and a latitude out of range.
      const bad: MessageInitShape<typeof ScheduleDeliveryRequestSchema> = {
        idempotencyKey: "bad-request",
        pickup: { latitude: 200, longitude: -122.33 },
        dropoff: { latitude: 47.63, longitude: -122.36 },
        deadline: timestampFromDate(new Date(Date.now() + 86_400_000)),
        confirmationRequired: ConfirmationType.NONE,
      };
      const error = await connectError(api(name).scheduleDelivery(bad, bearer(demoToken)));
      expect(error.code).toBe(Code.InvalidArgument);
      const fields = error.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field));
      expect(fields.sort()).toEqual(["package_info", "pickup.latitude"]);
      expect(error.rawMessage).toContain("package_info");
    });
  });

  it("serves the no-side-effect methods over Connect GET", async () => {
    const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ pageSize: 5 }) });
    const url = `${gateway.url}/dronedelivery.api.v1.DeliveryApiService/ListDeliveries?${query}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${demoToken}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { deliveries?: unknown[] };
    // An empty list is omitted from JSON.
    expect(Array.isArray(body.deliveries ?? [])).toBe(true);
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
  });

  it("yields the same delivery for a repeated Idempotency-Key header", async () => {
    const client = api("connect json");
    const headers = { authorization: `Bearer ${demoToken}`, "idempotency-key": "header-key-1" };
    const body = request("header-key-1");
    const first = await client.scheduleDelivery({ ...body, idempotencyKey: "" }, { headers });
    const again = await client.scheduleDelivery({ ...body, idempotencyKey: "" }, { headers });
    expect(again.deliveryId).toBe(first.deliveryId);
    // The header takes the place of the field.
    const viaField = await client.scheduleDelivery(body, bearer(demoToken));
    expect(viaField.deliveryId).toBe(first.deliveryId);
    // The same key with another request is refused, naming the key, over every protocol.
    for (const name of ["connect json", "grpc"]) {
      const error = await connectError(
        api(name).scheduleDelivery({ ...body, idempotencyKey: "", expedited: !body.expedited }, { headers }),
      );
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toContain('"header-key-1"');
      expect(error.findDetails(PreconditionFailureSchema)[0]?.violations[0]).toMatchObject({
        type: "IDEMPOTENCY_KEY_REUSED",
        subject: "header-key-1",
      });
    }
    // Without any key, every call is a new delivery.
    const a = await client.scheduleDelivery({ ...request(""), idempotencyKey: "" }, bearer(demoToken));
    const b = await client.scheduleDelivery({ ...request(""), idempotencyKey: "" }, bearer(demoToken));
    expect(a.deliveryId).not.toBe(b.deliveryId);
    for (const id of [first.deliveryId, a.deliveryId, b.deliveryId]) await created(client, id);
  });

  it("answers NotFound for another account's delivery, like a missing one", async () => {
    const client = api("connect binary");
    const { deliveryId } = await client.scheduleDelivery(request("owned-by-demo"), bearer(demoToken));
    await created(client, deliveryId);
    const calls = [
      () => client.getDelivery({ deliveryId }, bearer(contosoToken)),
      () => client.getDeliveryStatus({ deliveryId }, bearer(contosoToken)),
      () => client.getDeliveryOwner({ deliveryId }, bearer(contosoToken)),
      () => client.getDeliveryHistory({ deliveryId }, bearer(contosoToken)),
      () => client.cancelDelivery({ deliveryId, reason: "not mine" }, bearer(contosoToken)),
      () => client.confirmDelivery({ deliveryId, confirmationType: ConfirmationType.NONE }, bearer(contosoToken)),
      () => client.getDelivery({ deliveryId: "no-such-delivery" }, bearer(demoToken)),
    ];
    for (const call of calls) {
      const error = await connectError(call());
      expect(error.code).toBe(Code.NotFound);
    }
    const theirs = await client.listDeliveries({}, bearer(contosoToken));
    expect(theirs.deliveries).toEqual([]);
    // The delivery is untouched.
    const { delivery } = await client.getDelivery({ deliveryId }, bearer(demoToken));
    expect(delivery?.stage).not.toBe(DeliveryStage.CANCELLED);
  });

  it.each(["connect binary", "grpc"])("streams WatchDelivery to Completed over %s", async (name) => {
    const client = api(name);
    // Watched from its acceptance (readable at REQUESTED), with a drop-off 10 km away (a flight of
    // several seconds at the stack's time scale): the stream sees the flight however loaded the machine.
    const { deliveryId } = await client.scheduleDelivery(
      request(`watched-${name.replace(/\W/g, "-")}`, { latitude: 47.7, longitude: -122.36 }),
      bearer(demoToken),
    );
    const stages: DeliveryStage[] = [];
    let positions = 0;
    let lastSequence = 0n;
    for await (const update of client.watchDelivery(
      { deliveryId, includePositions: true },
      { ...bearer(demoToken), timeoutMs: 30_000 },
    )) {
      // A change of stage advances the sequence; a position carries the last change's.
      if (update.update.case === "event") {
        expect(update.sequence).toBeGreaterThan(lastSequence);
        stages.push(update.update.value.stage);
      } else {
        expect(update.sequence).toBeGreaterThanOrEqual(lastSequence);
      }
      lastSequence = update.sequence;
      if (update.update.case === "position") positions++;
    }
    expect(stages.at(-1)).toBe(DeliveryStage.COMPLETED);
    expect(stages).toContain(DeliveryStage.HEADED_TO_DROPOFF);
    expect(positions).toBeGreaterThan(0);
    const { delivery } = await client.getDelivery({ deliveryId }, bearer(demoToken));
    expect(delivery?.stage).toBe(DeliveryStage.COMPLETED);
    expect(delivery?.confirmTime).toBeUndefined();

    // The recipient's confirmation is recorded; the wrong type is refused with its reason.
    const wrong = await connectError(
      client.confirmDelivery({ deliveryId, confirmationType: ConfirmationType.PIN }, bearer(demoToken)),
    );
    expect(wrong.code).toBe(Code.FailedPrecondition);
    expect(wrong.findDetails(PreconditionFailureSchema)[0]?.violations[0]?.type).toBe("CONFIRMATION_TYPE");
    const confirmed = await client.confirmDelivery(
      { deliveryId, confirmationType: ConfirmationType.NONE, proofReference: "left at the door" },
      bearer(demoToken),
    );
    expect(confirmed.delivery?.stage).toBe(DeliveryStage.COMPLETED);
    expect(confirmed.delivery?.confirmTime).toBeDefined();
  });

  it("accepts a reschedule and a cancellation of the caller's own delivery", async () => {
    const client = api("grpc-web");
    // A drop-off 50 km away: a flight of about half a minute even at the stack's time scale, so that
    // the cancellation lands while it flies however loaded the machine is.
    const { deliveryId } = await client.scheduleDelivery(request("changed-then-cancelled", { latitude: 48.06, longitude: -122.36 }), bearer(demoToken));
    await created(client, deliveryId);
    const later = timestampFromDate(new Date(Date.now() + 2 * 86_400_000));
    const rescheduled = await client.rescheduleDelivery({ deliveryId, deadline: later }, bearer(demoToken));
    expect(rescheduled.deliveryId).toBe(deliveryId);
    expect(rescheduled.acceptTime).toBeDefined();

    const unknownPath = await connectError(
      client.rescheduleDelivery({ deliveryId, deadline: later, updateMask: { paths: ["owner_id"] } }, bearer(demoToken)),
    );
    expect(unknownPath.code).toBe(Code.InvalidArgument);
    expect(unknownPath.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toContain("update_mask");

    const cancelled = await client.cancelDelivery({ deliveryId, reason: "no longer needed" }, bearer(demoToken));
    expect(cancelled.deliveryId).toBe(deliveryId);
    const final = await vi.waitFor(
      async () => {
        const { delivery } = await client.getDelivery({ deliveryId }, bearer(demoToken));
        if (delivery?.stage !== DeliveryStage.CANCELLED) throw new Error(`stage ${delivery?.stage}`);
        return delivery;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(final.endReason).toContain("no longer needed");
  });
});
