// Tracing through the binding itself: createClient and addService carry the trace context, so a
// handler's nested unary and streaming calls join the caller's trace without any manual wrapping.
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { addService, createClient, notFound, type Client } from "./index.js";
import { shutdownTracing, useInMemoryTracing, withService } from "../observability/tracing.js";
import { currentTraceId } from "../observability/trace-ids.js";

const memory = useInMemoryTracing();
let servers: grpc.Server[] = [];
let back: Client<typeof Health>;
let front: Client<typeof Health>;
const seen: (string | undefined)[] = [];

async function serve(name: string, impl: object): Promise<string> {
  const server = new grpc.Server();
  addService(server, Health, impl as never, { serviceName: name });
  servers.push(server);
  const port = await new Promise<number>((r, j) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))));
  return `127.0.0.1:${port}`;
}

beforeAll(async () => {
  const backAddr = await serve("back", {
    check: async (req: { service: string }) => { if (req.service === "missing") throw notFound("nope"); return { status: 1 }; },
    watch: async function* () { seen.push(currentTraceId()); await sleep(2); yield { status: 1 }; await sleep(2); yield { status: 1 }; },
    list: () => ({ statuses: {} }),
  });
  back = createClient(Health, { address: backAddr });
  const frontAddr = await serve("front", {
    check: async (req: { service: string }) => {
      await sleep(3);
      seen.push(currentTraceId());
      await back.check({ service: req.service });
      for await (const _ of back.watch({})) { /* drain */ }
      return { status: HealthCheckResponse_ServingStatus.SERVING };
    },
    watch: async function* () { yield { status: 1 }; },
    list: () => ({ statuses: {} }),
  });
  front = createClient(Health, { address: frontAddr });
});
afterAll(async () => { front.close(); back.close(); servers.forEach((s) => s.forceShutdown()); await shutdownTracing(); });

it("wired binding traces nested calls without manual wrapping", async () => {
  await withService("gateway", () => front.check({ service: "x" }));
  const spans = memory.spans();
  expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
  expect(spans).toHaveLength(6);
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  for (const s of spans) if (s.parentSpanContext) expect(byId.has(s.parentSpanContext.spanId)).toBe(true);
  expect(seen.every((t) => t === spans[0]!.spanContext().traceId)).toBe(true);
  expect(seen).toHaveLength(2);
});

it("records errors through the binding", async () => {
  memory.reset();
  await expect(front.check({ service: "missing" })).rejects.toMatchObject({ code: Code.NotFound });
  const spans = memory.spans();
  const frontServer = spans.find((s) => s.kind === SpanKind.SERVER && s.resource.attributes["service.name"] === "front")!;
  expect(frontServer.attributes["rpc.grpc.status_code"]).toBe(Code.NotFound);
  expect(frontServer.status.code).toBe(SpanStatusCode.UNSET);
});
