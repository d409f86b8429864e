// The operators' fleet API (FleetApiService) over REST, SSE, Connect, gRPC-Web and gRPC, against
// the gateway in front of the whole platform running in-process over a private nats-server.
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FleetApiService } from "../gen/dronedelivery/api/v1/fleet_api_service_pb.js";
import type { RunningGateway } from "./module.js";
import { connectError, restCall, type Json } from "./test-calls.js";
import { startGatewayStack, type GatewayStack } from "./test-stack.js";
import { mintToken } from "./tokens.js";

const SECRET = "fleet-test-secret";
const DEADLINE = new Date(Date.now() + 86_400_000).toISOString();
/** The test stack's fleet (test-stack.ts). */
const FLEET_SIZE = 6;

let stack: GatewayStack | undefined;
let gateway: RunningGateway;
let demoToken: string;
let contosoToken: string;
let operatorToken: string;

const call = (method: string, path: string, token?: string) => restCall(gateway.url, method, path, token === undefined ? {} : { token });

async function schedule(token: string, key: string): Promise<string> {
  const res = await restCall(gateway.url, "POST", "/v1/deliveryrequests", {
    token,
    headers: { "idempotency-key": key },
    body: {
      pickup: { latitude: 47.61, longitude: -122.33 },
      dropoff: { latitude: 47.63, longitude: -122.36 },
      deadline: DEADLINE,
      confirmationRequired: "CONFIRMATION_TYPE_NONE",
      packageInfo: { packageId: `pkg-${key}`, size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
    },
  });
  expect(res.status).toBe(202);
  return res.json.deliveryId as string;
}

beforeAll(async () => {
  stack = await startGatewayStack(SECRET);
  ({ gateway, demoToken, contosoToken } = stack);
  operatorToken = await mintToken("acct-ops", SECRET, 3600, ["operator"]);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

const FLEET_PATHS = ["/v1/fleet/drones", "/v1/fleet/summary", "/v1/fleet/deliveries", "/v1/fleet/events"];

describe("the operator role", () => {
  it.each(FLEET_PATHS)("refuses a customer token on GET %s with 403 PERMISSION_DENIED", async (path) => {
    const res = await call("GET", path, demoToken);
    expect(res.status).toBe(403);
    expect(res.json.code).toBe("permission_denied");
    expect(res.json.message).toMatch(/operator role/);
  });

  it("refuses a token whose unknown roles are its only roles, and ignores them beside operator", async () => {
    const unknownOnly = await mintToken("acct-demo", SECRET, 3600, ["admin", "dispatcher"]);
    expect((await call("GET", "/v1/fleet/drones", unknownOnly)).status).toBe(403);
    const mixed = await mintToken("acct-ops", SECRET, 3600, ["admin", "operator"]);
    expect((await call("GET", "/v1/fleet/drones", mixed)).status).toBe(200);
  });

  it("answers 401 without a token or with a malformed roles claim", async () => {
    expect((await call("GET", "/v1/fleet/drones")).status).toBe(401);
    // Signed like a real token, but `roles` is a string: the token is refused as a whole.
    const { SignJWT } = await import("jose");
    const malformed = await new SignJWT({ roles: "operator" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("acct-ops")
      .setIssuer("dronedelivery-gateway")
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
      .sign(new TextEncoder().encode(SECRET));
    const res = await call("GET", "/v1/fleet/drones", malformed);
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("unauthenticated");
  });

  it("keeps an operator a customer of its own account on the customer API", async () => {
    const res = await call("GET", "/v1/deliveries", operatorToken);
    expect(res.status).toBe(200);
    expect(res.json.deliveries ?? []).toEqual([]);
  });

  const transports: Record<string, () => Transport> = {
    connect: () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    "grpc-web": () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    grpc: () => createGrpcTransport({ baseUrl: gateway.grpcUrl }),
  };
  it.each(Object.keys(transports))("enforces it over %s: customer PERMISSION_DENIED, operator served", async (name) => {
    const client = createClient(FleetApiService, transports[name]!());
    const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const denied = await connectError(client.getFleetSummary({}, bearer(contosoToken)));
    expect(denied.code).toBe(Code.PermissionDenied);
    const deniedWatch = await connectError(
      (async () => {
        for await (const _ of client.watchFleet({}, bearer(contosoToken))) break;
      })(),
    );
    expect(deniedWatch.code).toBe(Code.PermissionDenied);
    const drones = await client.listDrones({}, bearer(operatorToken));
    expect(drones.drones).toHaveLength(FLEET_SIZE);
  });
});

describe("the fleet API for an operator", () => {
  it("lists the drones with their stage, status, position and home base", async () => {
    const res = await call("GET", "/v1/fleet/drones", operatorToken);
    expect(res.status).toBe(200);
    const drones = res.json.drones as Json[];
    expect(drones).toHaveLength(FLEET_SIZE);
    expect(drones.map((d) => d.droneId)).toEqual([...drones.map((d) => d.droneId)].sort());
    for (const drone of drones) {
      expect(drone).toMatchObject({
        droneId: expect.stringMatching(/^drone-/),
        status: expect.stringMatching(/^DRONE_STATUS_(AVAILABLE|ASSIGNED|OUT_OF_SERVICE)$/),
        stage: expect.stringMatching(/^FLIGHT_STAGE_/),
        position: { latitude: expect.any(Number), longitude: expect.any(Number) },
        homeBase: { latitude: expect.any(Number), longitude: expect.any(Number) },
        maxPayloadKg: 5,
        batteryPercent: expect.any(Number),
      });
    }
    const paged = await call("GET", "/v1/fleet/drones?pageSize=4", operatorToken);
    expect(paged.json.drones).toHaveLength(4);
    const rest = await call("GET", `/v1/fleet/drones?pageSize=4&pageToken=${paged.json.nextPageToken as string}`, operatorToken);
    expect([...paged.json.drones, ...rest.json.drones].map((d: Json) => d.droneId)).toEqual(drones.map((d) => d.droneId));
    expect((await call("GET", "/v1/fleet/drones?pageSize=-1", operatorToken)).status).toBe(400);
  });

  it("lists every account's deliveries with their owners, filters by stage and pages", async () => {
    const mine = await schedule(demoToken, "fleet-list-demo");
    const theirs = await schedule(contosoToken, "fleet-list-contoso");
    const listed = await vi.waitFor(
      async () => {
        const res = await call("GET", "/v1/fleet/deliveries?pageSize=100", operatorToken);
        expect(res.status).toBe(200);
        const ids = (res.json.deliveries as Json[]).map((d) => d.delivery.deliveryId);
        if (!ids.includes(mine) || !ids.includes(theirs)) throw new Error("not listed yet");
        return res.json.deliveries as Json[];
      },
      { timeout: 20_000, interval: 200 },
    );
    const byId = new Map(listed.map((d) => [d.delivery.deliveryId as string, d]));
    expect(byId.get(mine)?.ownerId).toBe("acct-demo");
    expect(byId.get(theirs)?.ownerId).toBe("acct-contoso");
    expect(byId.get(theirs)?.delivery).toMatchObject({ stage: expect.stringMatching(/^DELIVERY_STAGE_/), pickup: { latitude: 47.61 } });
    // Newest first: the later request is listed before the earlier one.
    const order = listed.map((d) => d.delivery.deliveryId);
    expect(order.indexOf(theirs)).toBeLessThan(order.indexOf(mine));

    // Pages of one cover the same deliveries in the same order.
    const paged: string[] = [];
    let token = "";
    do {
      const res = await call("GET", `/v1/fleet/deliveries?pageSize=1${token ? `&pageToken=${token}` : ""}`, operatorToken);
      expect(res.status).toBe(200);
      paged.push(...((res.json.deliveries ?? []) as Json[]).map((d) => d.delivery.deliveryId as string));
      token = (res.json.nextPageToken as string | undefined) ?? "";
    } while (token !== "" && paged.length < 200);
    expect(paged.filter((id) => order.includes(id))).toEqual(order.filter((id) => paged.includes(id)));
    expect(paged).toEqual(expect.arrayContaining([mine, theirs]));

    // A stage filter lists only deliveries at that stage, this one among them (its stage is read
    // again when the delivery moved on between the two calls).
    await vi.waitFor(
      async () => {
        const current = await call("GET", "/v1/fleet/deliveries?pageSize=100", operatorToken);
        const stage = (current.json.deliveries as Json[]).find((d) => d.delivery.deliveryId === mine)?.delivery.stage as string;
        const filtered = await call("GET", `/v1/fleet/deliveries?stage=${stage}&pageSize=100`, operatorToken);
        expect(filtered.status).toBe(200);
        const atStage = (filtered.json.deliveries ?? []) as Json[];
        for (const d of atStage) expect(d.delivery.stage).toBe(stage);
        expect(atStage.map((d) => d.delivery.deliveryId)).toContain(mine);
      },
      { timeout: 20_000, interval: 200 },
    );
    const none = await call("GET", "/v1/fleet/deliveries?stage=DELIVERY_STAGE_CANCELLED", operatorToken);
    expect(none.json.deliveries ?? []).toEqual([]);
    // A token of one stage is refused for another.
    const first = await call("GET", "/v1/fleet/deliveries?pageSize=1", operatorToken);
    const wrong = await call("GET", `/v1/fleet/deliveries?stage=DELIVERY_STAGE_FAILED&pageToken=${first.json.nextPageToken as string}`, operatorToken);
    expect(wrong.status).toBe(400);
  });

  it("summarizes the fleet and the deliveries by stage", async () => {
    const id = await schedule(demoToken, "fleet-summary");
    const summary = await vi.waitFor(
      async () => {
        const res = await call("GET", "/v1/fleet/summary", operatorToken);
        expect(res.status).toBe(200);
        const listed = await call("GET", "/v1/fleet/deliveries?pageSize=100", operatorToken);
        if (!(listed.json.deliveries as Json[]).some((d) => d.delivery.deliveryId === id)) throw new Error("not counted yet");
        return res.json;
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(summary.dronesTotal).toBe(FLEET_SIZE);
    expect(summary.dronesBusy ?? 0).toBeLessThanOrEqual(FLEET_SIZE);
    expect(summary.utilization ?? 0).toBeCloseTo((summary.dronesBusy ?? 0) / FLEET_SIZE);
    const byStage = summary.deliveriesByStage as Record<string, number>;
    for (const [stage, n] of Object.entries(byStage)) {
      expect(stage).toMatch(/^DELIVERY_STAGE_/);
      expect(n).toBeGreaterThan(0);
    }
    const counted = Object.values(byStage).reduce((a, b) => a + b, 0);
    expect(counted).toBe(summary.deliveriesTotal);
    expect(counted).toBeGreaterThanOrEqual(1);
    const failed = byStage.DELIVERY_STAGE_FAILED ?? 0;
    expect((summary.recentFailures ?? []).length).toBe(Math.min(failed, 20));
    for (const f of summary.recentFailures ?? []) {
      expect(f).toMatchObject({ deliveryId: expect.any(String), ownerId: expect.any(String), failureCode: expect.stringMatching(/^FAILURE_CODE_/), reason: expect.any(String) });
    }
  });

  it("lists a failed delivery among the summary's recent failures, with its owner, code and reason", async () => {
    // An account the Account service does not know may not order: its delivery fails.
    const stranger = await mintToken("acct-stranger", SECRET);
    const id = await schedule(stranger, "fleet-failed");
    const failure = await vi.waitFor(
      async () => {
        const res = await call("GET", "/v1/fleet/summary", operatorToken);
        const found = (res.json.recentFailures as Json[] | undefined)?.find((f) => f.deliveryId === id);
        if (!found) throw new Error("not failed yet");
        expect(res.json.deliveriesByStage.DELIVERY_STAGE_FAILED).toBeGreaterThanOrEqual(1);
        return found;
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(failure).toMatchObject({
      ownerId: "acct-stranger",
      failureCode: "FAILURE_CODE_ACCOUNT_NOT_ALLOWED",
      reason: expect.any(String),
      updateTime: expect.any(String),
    });
    const failed = await call("GET", "/v1/fleet/deliveries?stage=DELIVERY_STAGE_FAILED", operatorToken);
    expect((failed.json.deliveries as Json[]).map((d) => d.delivery.deliveryId)).toContain(id);
  });

  // End to end: a drone's flight -> DRONE_TELEMETRY -> Drone WatchFleet -> gateway -> SSE.
  it("streams the fleet over SSE: every drone first, then live location events of a drone in flight", async () => {
    const controller = new AbortController();
    try {
      const res = await fetch(`${gateway.url}/v1/fleet/events`, {
        headers: { authorization: `Bearer ${operatorToken}` },
        signal: controller.signal,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream");
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const events: Json[] = [];
      let buffer = "";
      const nextEvent = async (): Promise<Json> => {
        for (;;) {
          const end = buffer.indexOf("\n\n");
          if (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (data !== undefined) return JSON.parse(data) as Json;
            continue;
          }
          const { value, done } = await reader.read();
          if (done) throw new Error("the stream ended");
          buffer += value;
        }
      };
      for (let i = 0; i < FLEET_SIZE; i++) events.push(await nextEvent());
      expect(new Set(events.map((e) => e.droneId)).size).toBe(FLEET_SIZE);
      for (const e of events) {
        expect(e.droneSequence).toBeUndefined(); // 0: a drone's state at the start
        expect(e).toMatchObject({ stage: expect.stringMatching(/^FLIGHT_STAGE_/), position: { latitude: expect.any(Number) } });
      }

      const id = await schedule(demoToken, "fleet-watched");
      for (;;) {
        const event = await nextEvent();
        if (event.deliveryId !== id || event.droneSequence === undefined) continue;
        expect(event).toMatchObject({
          droneId: expect.stringMatching(/^drone-/),
          stage: expect.stringMatching(/^FLIGHT_STAGE_/),
          position: { latitude: expect.any(Number), longitude: expect.any(Number) },
          eventTime: expect.any(String),
          droneSequence: expect.stringMatching(/^[1-9]\d*$/),
        });
        break;
      }
    } finally {
      controller.abort();
    }
  }, 30_000);
});
