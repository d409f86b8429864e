// One trace over the schedule path: a call to Ingestion, the JetStream publish, the Scheduler's
// consumer and every domain service it calls share one trace id (in-memory exporter).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SpanKind } from "@opentelemetry/api";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { IngestionService, ScheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { createClient } from "../lib/grpc/index.js";
import { shutdownTracing, useInMemoryTracing, withService } from "../lib/observability/tracing.js";
import { startNatsServer, type TestNatsServer } from "./harness/nats-server.js";
import { startPlatform, type TestPlatform } from "./harness/platform.js";

const memory = useInMemoryTracing();
let nats: TestNatsServer; let platform: TestPlatform;
beforeAll(async () => { nats = await startNatsServer(); platform = await startPlatform(nats.url, { env: { DRONE_FLEET_SIZE: "3" } }); });
afterAll(async () => { await platform?.stop(); await nats?.stop(); await shutdownTracing(); });

it("one trace from ingestion through the scheduler to the domain services", async () => {
  const ingestion = createClient(IngestionService, { address: platform.address("ingestion") });
  memory.reset();
  const { deliveryId } = await withService("gateway", () => ingestion.scheduleDelivery(create(ScheduleDeliveryRequestSchema, {
    idempotencyKey: "trace-1", ownerId: "acct-demo",
    pickup: { latitude: 47.61, longitude: -122.33 }, dropoff: { latitude: 47.63, longitude: -122.36 },
    deadline: timestampFromDate(new Date(Date.now() + 86_400_000)), confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: "pkg-trace-1", size: PackageSize.SMALL, weightKg: 1.2 }],
  })));
  const root = memory.spans().find((s) => s.kind === SpanKind.CLIENT && s.resource.attributes["service.name"] === "gateway")!;
  const traceId = root.spanContext().traceId;
  await vi.waitFor(() => {
    const services = new Set(memory.spans().filter((s) => s.spanContext().traceId === traceId && s.kind === SpanKind.SERVER).map((s) => s.resource.attributes["service.name"]));
    expect([...services].sort()).toEqual(expect.arrayContaining(["account", "delivery", "drone", "ingestion", "package"]));
  }, { timeout: 20_000, interval: 100 });
  const inTrace = memory.spans().filter((s) => s.spanContext().traceId === traceId);
  ingestion.close();
});
