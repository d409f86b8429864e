// One trace over the whole schedule path, as production runs it (mutual TLS, the caller table):
// a REST POST to the gateway, its call to Ingestion, the JetStream publish, the Scheduler's
// consumer, every domain service it calls and the status event the Delivery service publishes,
// all under the trace id the gateway started (asserted from the in-memory exporter).
import { SpanKind } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { startGatewayStack, type GatewayStack } from "../gateway/test-stack.js";
import { shutdownTracing, useInMemoryTracing } from "../lib/observability/tracing.js";

const memory = useInMemoryTracing();
let stack: GatewayStack;

beforeAll(async () => {
  stack = await startGatewayStack("trace-test-secret-trace-test");
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await shutdownTracing();
});

const serviceOf = (span: ReadableSpan) => span.resource.attributes["service.name"];

it("follows a delivery request from the gateway through every service under one trace id", async () => {
  const res = await fetch(`${stack.gateway.url}/v1/deliveryrequests`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.demoToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      pickup: { latitude: 47.61, longitude: -122.33 },
      dropoff: { latitude: 47.63, longitude: -122.36 },
      deadline: new Date(Date.now() + 86_400_000).toISOString(),
      packageInfo: { packageId: "pkg-traced", size: "PACKAGE_SIZE_SMALL", weightKg: 1 },
    }),
  });
  expect(res.status).toBe(202);

  const root = memory
    .spans()
    .find((s) => s.kind === SpanKind.SERVER && serviceOf(s) === "gateway" && s.name.endsWith("/ScheduleDelivery"));
  expect(root).toBeDefined();
  const traceId = root!.spanContext().traceId;
  // The caller learns the trace id, to quote it when asking about the request.
  expect(res.headers.get("x-trace-id")).toBe(traceId);
  const inTrace = () => memory.spans().filter((s) => s.spanContext().traceId === traceId);

  await vi.waitFor(
    () => {
      const spans = inTrace();
      const servers = new Set(spans.filter((s) => s.kind === SpanKind.SERVER).map(serviceOf));
      expect([...servers]).toEqual(expect.arrayContaining(["gateway", "ingestion", "account", "package", "drone", "delivery"]));
      // Ingestion's publish and the Scheduler's consumption of it.
      expect(spans.some((s) => s.kind === SpanKind.PRODUCER && serviceOf(s) === "ingestion")).toBe(true);
      expect(spans.some((s) => s.kind === SpanKind.CONSUMER && serviceOf(s) === "scheduler")).toBe(true);
      // The Scheduler's calls, each a client span of the scheduler.
      const called = new Set(spans.filter((s) => s.kind === SpanKind.CLIENT && serviceOf(s) === "scheduler").map((s) => s.name.split("/")[0]));
      expect([...called]).toEqual(
        expect.arrayContaining([
          "dronedelivery.account.v1.AccountService",
          "dronedelivery.package.v1.PackageService",
          "dronedelivery.drone.v1.DroneSchedulerService",
          "dronedelivery.delivery.v1.DeliveryService",
        ]),
      );
      // The status event of the new delivery.
      expect(spans.some((s) => s.kind === SpanKind.PRODUCER && serviceOf(s) === "delivery")).toBe(true);
    },
    { timeout: 20_000, interval: 100 },
  );
  // Every span of the trace has its parent in the trace, except the gateway's root.
  const spans = inTrace();
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  for (const span of spans) {
    if (span === root) continue;
    expect(ids.has(span.parentSpanContext?.spanId ?? "")).toBe(true);
  }
});
