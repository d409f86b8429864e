/**
 * The gateway's edge over real HTTP: body size limit (413), per-client rate limit (429 with
 * Retry-After, and RESOURCE_EXHAUSTED for gRPC callers), CORS for configured origins, and /readyz
 * when the internal services cannot be reached. None of these need the services to run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DeliveryApiService } from "../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { startGateway, type RunningGateway } from "./module.js";
import { TEST_PKI_DIR } from "./test-stack.js";
import { mintToken } from "./tokens.js";

const SECRET = "edge-test-secret-edge-test-secret";
const ORIGIN = "https://app.example.com";

let gateway: RunningGateway;
let token: string;

beforeAll(async () => {
  gateway = await startGateway({
    env: {
      GATEWAY_JWT_SECRET: SECRET,
      // Its client certificates come from the tests' own PKI, never the repository's .run/.
      INTERNAL_PKI_DIR: TEST_PKI_DIR,
      GATEWAY_PORT: "0",
      GATEWAY_GRPC_PORT: "0",
      GATEWAY_CORS_ORIGINS: `${ORIGIN}, https://admin.example.com`,
      GATEWAY_RATE_LIMIT_REQUESTS: "3",
      GATEWAY_RATE_LIMIT_WINDOW_SECONDS: "30",
      GATEWAY_MAX_BODY_BYTES: "2048",
      // Nothing listens here: the services are unreachable.
      INGESTION_ADDRESS: "127.0.0.1:9",
      DELIVERY_ADDRESS: "127.0.0.1:9",
    },
  });
  token = await mintToken("acct-demo", SECRET);
});

afterAll(async () => {
  await gateway?.close();
});

function auth(t: string): Record<string, string> {
  return { authorization: `Bearer ${t}` };
}

describe("the body size limit", () => {
  it("answers 413 for a declared body over the limit, before reading it", async () => {
    const res = await fetch(`${gateway.url}/v1/deliveryrequests`, {
      method: "POST",
      headers: { ...auth(await mintToken("acct-big", SECRET)), "content-type": "application/json" },
      body: JSON.stringify({ padding: "x".repeat(4096) }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: "resource_exhausted" });
  });

  it("answers 413 for a chunked REST body that grows over the limit", async () => {
    const chunks = [new TextEncoder().encode(`{"padding":"${"y".repeat(3000)}"}`)];
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const res = await fetch(`${gateway.url}/v1/deliveryrequests`, {
      method: "POST",
      headers: { ...auth(await mintToken("acct-chunked", SECRET)), "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
  });
});

describe("the rate limit", () => {
  it("answers 429 with Retry-After once a client spends its allowance, and counts clients apart", async () => {
    const mine = auth(await mintToken("acct-busy", SECRET));
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await fetch(`${gateway.url}/v1/deliveries/dlv-x`, { headers: mine })).status);
    }
    // The first three reach the handler (which cannot reach the Delivery service), the fourth does not.
    expect(statuses.slice(0, 3).every((s) => s !== 429)).toBe(true);
    const limited = await fetch(`${gateway.url}/v1/deliveries/dlv-x`, { headers: mine });
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(await limited.json()).toMatchObject({ code: "resource_exhausted" });

    // Another client still has its own allowance.
    const other = await fetch(`${gateway.url}/v1/deliveries/dlv-x`, { headers: auth(await mintToken("acct-calm", SECRET)) });
    expect(other.status).not.toBe(429);
  });

  it("answers RESOURCE_EXHAUSTED to a gRPC caller over the limit", async () => {
    const client = createClient(DeliveryApiService, createGrpcTransport({ baseUrl: gateway.grpcUrl }));
    const headers = auth(await mintToken("acct-grpc", SECRET));
    const codes: Code[] = [];
    for (let i = 0; i < 4; i++) {
      try {
        await client.getDelivery({ deliveryId: "dlv-x" }, { headers, timeoutMs: 3000 });
      } catch (error) {
        codes.push(ConnectError.from(error).code);
      }
    }
    expect(codes[3]).toBe(Code.ResourceExhausted);
    expect(codes.slice(0, 3)).not.toContain(Code.ResourceExhausted);
  });

  it("never limits the health endpoints", async () => {
    for (let i = 0; i < 6; i++) expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});

describe("CORS", () => {
  it("answers a preflight from an allowed origin with the protocols' headers", async () => {
    const res = await fetch(`${gateway.url}/v1/deliveries/dlv-1`, {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(res.headers.get("access-control-allow-methods")).toContain("GET");
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const header of ["authorization", "idempotency-key", "connect-protocol-version", "x-grpc-web", "x-canary"]) {
      expect(allowed).toContain(header);
    }
  });

  it("gives a refused origin no CORS headers", async () => {
    const res = await fetch(`${gateway.url}/v1/deliveries/dlv-1`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.net", "access-control-request-method": "GET" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("exposes Location and the protocols' headers on actual responses", async () => {
    const res = await fetch(`${gateway.url}/v1/deliveries/dlv-1`, { headers: { origin: ORIGIN } });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect((res.headers.get("access-control-expose-headers") ?? "").toLowerCase()).toContain("location");
  });
});

describe("/openapi.json", () => {
  it("serves the OpenAPI 3.1 document of both versions without a token", async () => {
    const res = await fetch(`${gateway.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(doc.paths["/v1/deliveryrequests"] ?? {})).toContain("post");
    expect(Object.keys(doc.paths["/v2/deliveries"] ?? {})).toEqual(expect.arrayContaining(["get", "post"]));
  });
});

describe("/readyz", () => {
  it("answers 503 naming the services it cannot reach", async () => {
    const res = await fetch(`${gateway.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      status: "not_ready",
      services: { ingestion: "UNREACHABLE", delivery: "UNREACHABLE" },
    });
  });

  it("hides where the unreachable services are from a caller's error", async () => {
    const res = await fetch(`${gateway.url}/v1/deliveries/dlv-y`, { headers: auth(await mintToken("acct-quiet", SECRET)) });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { message: string };
    expect(body.message).not.toMatch(/127\.0\.0\.1|:9\b|ECONNREFUSED/);
  });
});
