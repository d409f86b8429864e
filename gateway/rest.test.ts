// REST + JSON transcoded from the google.api.http annotations, with plain fetch against the
// gateway in front of the whole platform running in-process over a private nats-server.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startGateway, type RunningGateway } from "./module.js";
import { startGatewayStack, type GatewayStack } from "./test-stack.js";
import { badRequestFields as fieldsOf, restCall, type Json, type RestCallOptions } from "./test-calls.js";
import { mintToken } from "./tokens.js";

const SECRET = "rest-test-secret";

let gateway: RunningGateway;
let demoToken: string;
let contosoToken: string;


/** One deadline for every request, so that a request resent with its key is the same request. */
const DEADLINE = new Date(Date.now() + 86_400_000).toISOString();

function scheduleBody(packageId: string, dropoff = { latitude: 47.63, longitude: -122.36 }): Json {
  return {
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff,
    deadline: DEADLINE,
    confirmationRequired: "CONFIRMATION_TYPE_NONE",
    packageInfo: { packageId, size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
  };
}


async function schedule(key: string, dropoff?: { latitude: number; longitude: number }): Promise<string> {
  const res = await call("POST", "/v1/deliveryrequests", {
    token: demoToken,
    body: scheduleBody(`pkg-${key}`, dropoff),
    headers: { "idempotency-key": key },
  });
  expect(res.status).toBe(202);
  return res.json.deliveryId as string;
}

/** Waits until the workflow has created the delivery (past REQUESTED, readable from the accept). */
async function created(deliveryId: string): Promise<Json> {
  return vi.waitFor(
    async () => {
      const res = await call("GET", `/v1/deliveries/${deliveryId}`, { token: demoToken });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      if (res.json.stage === "DELIVERY_STAGE_REQUESTED") throw new Error("not created yet");
      return res.json;
    },
    { timeout: 20_000, interval: 100 },
  );
}


const call = (method: string, path: string, options?: RestCallOptions) => restCall(gateway.url, method, path, options);

let stack: GatewayStack | undefined;

beforeAll(async () => {
  stack = await startGatewayStack(SECRET);
  ({ gateway, demoToken, contosoToken } = stack);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("REST", () => {
  it("accepts a delivery request with 202 and Location, idempotently by key", async () => {
    const body = scheduleBody("pkg-rest-1");
    const res = await call("POST", "/v1/deliveryrequests", {
      token: demoToken,
      body,
      headers: { "idempotency-key": "rest-key-1" },
    });
    expect(res.status).toBe(202);
    expect(res.json.deliveryId).toEqual(expect.any(String));
    expect(res.json.acceptTime).toEqual(expect.any(String));
    expect(res.headers.get("location")).toBe(`/v1/deliveries/${res.json.deliveryId}`);
    const again = await call("POST", "/v1/deliveryrequests", {
      token: demoToken,
      body,
      headers: { "idempotency-key": "rest-key-1" },
    });
    expect(again.json.deliveryId).toBe(res.json.deliveryId);
    await created(res.json.deliveryId);
  });

  it("answers 422 naming the key when an Idempotency-Key is reused with another body, on any gateway instance", async () => {
    const body = scheduleBody("pkg-rest-reused");
    const headers = { "idempotency-key": "rest-key-reused" };
    const first = await call("POST", "/v1/deliveryrequests", { token: demoToken, body, headers });
    expect(first.status).toBe(202);
    const other = { ...body, packageInfo: { ...body.packageInfo, weightKg: 2.5 } };
    const reused = await call("POST", "/v1/deliveryrequests", { token: demoToken, body: other, headers });
    expect(reused.status).toBe(422);
    expect(reused.json.code).toBe("failed_precondition");
    expect(reused.json.message).toContain('"rest-key-reused"');
    expect(reused.json.details).toEqual([
      {
        type: "google.rpc.PreconditionFailure",
        violations: [expect.objectContaining({ type: "IDEMPOTENCY_KEY_REUSED", subject: "rest-key-reused" })],
      },
    ]);
    // Another account's key of the same name is its own.
    const contoso = await call("POST", "/v1/deliveryrequests", { token: contosoToken, body: other, headers });
    expect(contoso.status).toBe(202);

    // The fingerprints live in NATS: a second gateway (or this one restarted) knows them.
    const second = await startGateway({ env: { ...stack!.platform.env, NATS_URL: stack!.nats.url, GATEWAY_JWT_SECRET: SECRET, GATEWAY_PORT: "0", GATEWAY_GRPC_PORT: "0", GATEWAY_RATE_LIMIT_REQUESTS: "0" } });
    try {
      await vi.waitFor(
        async () => {
          const res = await restCall(second.url, "POST", "/v1/deliveryrequests", { token: demoToken, body: other, headers });
          expect(res.status).toBe(422);
        },
        { timeout: 10_000, interval: 200 },
      );
      const same = await restCall(second.url, "POST", "/v1/deliveryrequests", { token: demoToken, body, headers });
      expect(same.status).toBe(202);
      expect(same.json.deliveryId).toBe(first.json.deliveryId);
    } finally {
      await second.close();
    }

    // A request refused for bad input gives its key back: the corrected one is accepted.
    const badHeaders = { "idempotency-key": "rest-key-corrected" };
    const bad = { ...body, pickup: { latitude: 200, longitude: 0 } };
    expect((await call("POST", "/v1/deliveryrequests", { token: demoToken, body: bad, headers: badHeaders })).status).toBe(400);
    expect((await call("POST", "/v1/deliveryrequests", { token: demoToken, body, headers: badHeaders })).status).toBe(202);
  });

  it("reads a delivery, its status, owner, history and the list", async () => {
    const id = await schedule("rest-read");
    const delivery = await created(id);
    expect(delivery).toMatchObject({
      deliveryId: id,
      pickup: { latitude: 47.61, longitude: -122.33 },
      packageInfo: { packageId: "pkg-rest-read", size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
      carrier: "drone",
    });
    expect(delivery.stage).toMatch(/^DELIVERY_STAGE_/);

    const status = await call("GET", `/v1/deliveries/${id}/status`, { token: demoToken });
    expect(status.status).toBe(200);
    expect(status.json).toMatchObject({ deliveryId: id });
    expect(status.json.stage).toMatch(/^DELIVERY_STAGE_/);

    const owner = await call("GET", `/v1/deliveries/${id}/owner`, { token: demoToken });
    expect(owner.json).toEqual({ deliveryId: id, ownerId: "acct-demo" });

    const history = await vi.waitFor(
      async () => {
        const res = await call("GET", `/v1/deliveries/${id}/history`, { token: demoToken });
        const events = (res.json.events ?? []) as Json[];
        if (!events.some((e) => e.stage === "DELIVERY_STAGE_CREATED")) throw new Error("not created yet");
        return events;
      },
      { timeout: 20_000, interval: 100 },
    );
    // Accepted (REQUESTED), then created by the workflow.
    expect(history.map((e) => e.stage).filter((s) => s !== "DELIVERY_STAGE_REQUESTED")[0]).toBe("DELIVERY_STAGE_CREATED");

    const list = await call("GET", "/v1/deliveries?pageSize=10", { token: demoToken });
    expect(list.status).toBe(200);
    expect(Array.isArray(list.json.deliveries)).toBe(true);
    expect(list.json.deliveries.length).toBeGreaterThan(0);
    expect(list.json.deliveries.length).toBeLessThanOrEqual(10);
    const byProtoName = await call("GET", "/v1/deliveries?page_size=1", { token: demoToken });
    expect(byProtoName.json.deliveries.length).toBe(1);
  });

  it("reschedules with PATCH and cancels with DELETE", async () => {
    // A drop-off 50 km away: the flight lasts about half a minute even at the stack's time scale, so
    // that the cancellation lands mid-flight however loaded the machine is.
    const id = await schedule("rest-change", { latitude: 48.06, longitude: -122.36 });
    await created(id);
    const later = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const rescheduled = await call("PATCH", `/v1/deliveryrequests/${id}`, { token: demoToken, body: { deadline: later } });
    expect(rescheduled.status).toBe(200);
    expect(rescheduled.json.deliveryId).toBe(id);

    const cancelled = await call("DELETE", `/v1/deliveryrequests/${id}?reason=no+longer+needed`, { token: demoToken });
    expect(cancelled.status).toBe(200);
    expect(cancelled.json.deliveryId).toBe(id);
    const final = await vi.waitFor(
      async () => {
        const d = await created(id);
        if (d.stage !== "DELIVERY_STAGE_CANCELLED") throw new Error(`stage ${d.stage}`);
        return d;
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(final.endReason).toContain("no longer needed");
  });

  it("lets path variables win over body fields", async () => {
    const res = await call("PATCH", "/v1/deliveryrequests/no-such-delivery", {
      token: demoToken,
      body: { deliveryId: "something-else", deadline: new Date(Date.now() + 86_400_000).toISOString() },
    });
    expect(res.status).toBe(404);
  });

  it("answers 400 with field violations for bad values, unknown fields, wrong types and bad JSON", async () => {
    const bad: Json = { ...scheduleBody("pkg-bad"), pickup: { latitude: 200, longitude: -122.33 } };
    delete bad.packageInfo;
    const invalid = await call("POST", "/v1/deliveryrequests", { token: demoToken, body: bad });
    expect(invalid.status).toBe(400);
    expect(invalid.json.code).toBe("invalid_argument");
    expect(fieldsOf(invalid.json)).toEqual(["package_info", "pickup.latitude"]);

    const unknown = await call("POST", "/v1/deliveryrequests", {
      token: demoToken,
      body: { ...scheduleBody("pkg-unknown"), ownerId: "acct-contoso", pickup: { latitude: 1, longitude: 2, elevation: 3 } },
    });
    expect(unknown.status).toBe(400);
    expect(fieldsOf(unknown.json)).toEqual(["ownerId", "pickup.elevation"]);
    expect(unknown.json.message).toContain("unknown field");

    const wrongType = await call("POST", "/v1/deliveryrequests", {
      token: demoToken,
      body: { ...scheduleBody("pkg-type"), expedited: "yes", packageInfo: { weightKg: "heavy" } },
    });
    expect(wrongType.status).toBe(400);
    expect(fieldsOf(wrongType.json)).toEqual(["expedited", "package_info.weight_kg"]);

    const query = await call("GET", "/v1/deliveries?pageSize=many&colour=red", { token: demoToken });
    expect(query.status).toBe(400);
    expect(fieldsOf(query.json)).toEqual(["colour", "page_size"]);

    const notJson = await call("POST", "/v1/deliveryrequests", { token: demoToken, body: "{not json" });
    expect(notJson.status).toBe(400);
    expect(notJson.json.code).toBe("invalid_argument");
  });

  it("answers 401 without a valid token", async () => {
    for (const token of [undefined, "not-a-jwt", await mintToken("acct-demo", "another-secret")]) {
      const res = await call("GET", "/v1/deliveries", { token });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe("unauthenticated");
    }
  });

  it("answers 404 for another account's delivery, a missing one and an unknown route", async () => {
    const id = await schedule("rest-owned");
    await created(id);
    for (const path of [`/v1/deliveries/${id}`, `/v1/deliveries/${id}/status`, `/v1/deliveries/${id}/history`]) {
      const res = await call("GET", path, { token: contosoToken });
      expect(res.status).toBe(404);
      expect(res.json.code).toBe("not_found");
    }
    const cancel = await call("DELETE", `/v1/deliveryrequests/${id}`, { token: contosoToken });
    expect(cancel.status).toBe(404);
    const missing = await call("GET", "/v1/deliveries/no-such-delivery", { token: demoToken });
    expect(missing.status).toBe(404);
    const watch = await call("GET", "/v1/deliveries/no-such-delivery/events", { token: demoToken });
    expect(watch.status).toBe(404);
    expect(watch.headers.get("content-type")).toBe("application/json");
    const route = await call("GET", "/v1/parcels", { token: demoToken });
    expect(route.status).toBe(404);
    expect(route.json.code).toBe("not_found");
  });

  it("answers 405 with Allow for a known path and the wrong method", async () => {
    const res = await call("PUT", "/v1/deliveries/some-id", { token: demoToken, body: {} });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
    expect(res.json).toMatchObject({ code: "unimplemented", message: expect.stringContaining("PUT") });
    const requests = await call("GET", "/v1/deliveryrequests/some-id", { token: demoToken });
    expect(requests.status).toBe(405);
    expect(requests.headers.get("allow")).toBe("DELETE, PATCH");
  });

  // End to end: REST POST -> gateway -> ingestion -> JetStream -> scheduler -> account, package,
  // drone and delivery services -> drone flight -> telemetry -> status events -> SSE.
  it("follows a delivery from the moment it is requested until Completed, then records the confirmation", async () => {
    const id = await schedule("rest-watched");
    const res = await fetch(`${gateway.url}/v1/deliveries/${id}/events?includePositions=true`, {
      headers: { authorization: `Bearer ${demoToken}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text(); // the stream ends when the delivery's does
    const events = text
      .split("\n\n")
      .filter((block) => block.trim() !== "")
      .map((block) => {
        const id = /^id: (\d+)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        return { id, data: JSON.parse(data ?? "null") as Json };
      });
    const stages = events.filter((e) => e.data.event).map((e) => e.data.event.stage as string);
    expect(stages.at(-1)).toBe("DELIVERY_STAGE_COMPLETED");
    expect(events.some((e) => e.data.position)).toBe(true);
    for (const e of events) expect(e.id).toBe(e.data.sequence);

    // Resuming after the last event yields nothing more than the end.
    const lastId = events.filter((e) => e.data.event).at(-1)?.id ?? "0";
    const resumed = await fetch(`${gateway.url}/v1/deliveries/${id}/events`, {
      headers: { authorization: `Bearer ${demoToken}`, "last-event-id": lastId },
    });
    const rest = (await resumed.text()).split("\n\n").filter((b) => b.includes("\"event\""));
    expect(rest).toEqual([]);

    const confirmed = await call("POST", `/v1/deliveries/${id}/confirmations`, {
      token: demoToken,
      body: { confirmationType: "CONFIRMATION_TYPE_NONE", proofReference: "left at the door" },
    });
    expect(confirmed.status).toBe(200);
    expect(confirmed.json.delivery.stage).toBe("DELIVERY_STAGE_COMPLETED");
    expect(confirmed.json.delivery.confirmTime).toEqual(expect.any(String));
  });
});
