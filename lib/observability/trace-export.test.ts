// Tracing as the environment sets it up: off by default (the helpers then only run what they
// wrap), and OTLP over HTTP to a collector, here a real HTTP server on loopback.

import http from "node:http";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { context, trace } from "@opentelemetry/api";
import { headers as natsHeaders } from "nats";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DEFAULT_OTLP_TRACES_URL, tracingConfigFromEnv } from "./trace-config.js";
import { clientSpan, serverAddressOf, serverSpan, startClientSpan, startServerSpan } from "./trace-grpc.js";
import { currentTraceId, traceLogFields } from "./trace-ids.js";
import { consumerSpan, producerSpan, subjectPattern } from "./trace-nats.js";
import { initTracing, shutdownTracing } from "./tracing.js";

const CHECK = "/grpc.health.v1.Health/Check";

describe("tracing configuration from the environment", () => {
  it("is off unless an endpoint or an exporter is asked for", () => {
    expect(tracingConfigFromEnv({}).exporters).toEqual([]);
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "" }).exporters).toEqual([]);
  });

  it("exports OTLP over HTTP to the configured endpoint", () => {
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).exporters).toEqual([
      { kind: "otlp", url: "http://collector:4318/v1/traces", headers: {} },
    ]);
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).exporters[0]).toMatchObject({
      url: "http://collector:4318/v1/traces",
    });
    expect(
      tracingConfigFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:9000/custom",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc,x-a=1",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-a=2",
      }).exporters,
    ).toEqual([{ kind: "otlp", url: "http://traces:9000/custom", headers: { authorization: "Bearer abc", "x-a": "2" } }]);
    expect(tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "otlp" }).exporters).toEqual([
      { kind: "otlp", url: DEFAULT_OTLP_TRACES_URL, headers: {} },
    ]);
  });

  it("honours OTEL_TRACES_EXPORTER and OTEL_SDK_DISABLED", () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
    expect(tracingConfigFromEnv({ ...endpoint, OTEL_TRACES_EXPORTER: "none" }).exporters).toEqual([]);
    expect(tracingConfigFromEnv({ ...endpoint, OTEL_SDK_DISABLED: "true" }).exporters).toEqual([]);
    expect(tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "console" }).exporters).toEqual([{ kind: "console" }]);
    expect(tracingConfigFromEnv({ ...endpoint, OTEL_TRACES_EXPORTER: "otlp, console" }).exporters.map((e) => e.kind)).toEqual([
      "otlp",
      "console",
    ]);
    const odd = tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "zipkin", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    expect(odd.exporters).toEqual([]);
    expect(odd.warnings.join("\n")).toContain('unknown exporter "zipkin"');
    expect(tracingConfigFromEnv({ OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test" }).resourceAttributes).toEqual({
      "deployment.environment": "test",
    });
  });

  it("reads host and port from grpc-js targets", () => {
    expect(serverAddressOf("127.0.0.1:50051")).toEqual({ address: "127.0.0.1", port: 50051 });
    expect(serverAddressOf("dns:///account:50051")).toEqual({ address: "account", port: 50051 });
    expect(serverAddressOf("dns://8.8.8.8/account:50051")).toEqual({ address: "account", port: 50051 });
    expect(serverAddressOf("[::1]:7000")).toEqual({ address: "::1", port: 7000 });
    expect(serverAddressOf("ipv4:10.0.0.1:1,10.0.0.2:2")).toEqual({ address: "10.0.0.1", port: 1 });
    expect(serverAddressOf("unix:///run/account.sock")).toEqual({ address: "/run/account.sock", port: undefined });
    expect(serverAddressOf("account")).toEqual({ address: "account", port: undefined });
  });
});

describe("subject templates for span names", () => {
  it("finds the stream subject a subject falls under", () => {
    const patterns = ["delivery.request.schedule.*", "workflow.failed.>", "drone.*.location", "delivery.*.status"];
    expect(subjectPattern("delivery.request.schedule.d-1", patterns)).toBe("delivery.request.schedule.*");
    expect(subjectPattern("workflow.failed.d-1", patterns)).toBe("workflow.failed.>");
    expect(subjectPattern("workflow.failed.d-1.x", patterns)).toBe("workflow.failed.>");
    expect(subjectPattern("workflow.failed", patterns)).toBeUndefined();
    expect(subjectPattern("drone.dr-7.location", patterns)).toBe("drone.*.location");
    expect(subjectPattern("delivery.d-9.status", patterns)).toBe("delivery.*.status");
    expect(subjectPattern("delivery.d-9.status.extra", patterns)).toBeUndefined();
    expect(subjectPattern("delivery.request.cancel.d-1", patterns)).toBeUndefined();
  });
});

describe("tracing off", () => {
  afterEach(() => shutdownTracing());

  it("registers nothing and only runs what the helpers wrap", async () => {
    for (const env of [{}, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_TRACES_EXPORTER: "none" }, { OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" }]) {
      expect(initTracing("account", { env }).enabled).toBe(false);
    }
    expect(trace.getTracer("probe").startSpan("probe").isRecording()).toBe(false);

    expect(await clientSpan("127.0.0.1:1", CHECK, async (carrier) => carrier)).toEqual({});
    const stream = startClientSpan("127.0.0.1:1", CHECK);
    expect(stream.carrier).toEqual({});
    stream.end(new Error("ignored"));
    stream.end();

    const metadata = new grpc.Metadata();
    metadata.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(await serverSpan(CHECK, metadata, async () => currentTraceId())).toBeUndefined();
    const server = startServerSpan(CHECK, metadata);
    expect(server.run(() => 42)).toBe(42);
    server.end({ code: 13, details: "ignored" });

    const h = natsHeaders();
    expect(await producerSpan("delivery.d-1.status", h, async () => "sent")).toBe("sent");
    expect(h.has("traceparent")).toBe(false);
    expect(await consumerSpan("delivery.d-1.status", h, async () => traceLogFields())).toEqual({});
    await expect(consumerSpan("delivery.d-1.status", undefined, () => Promise.reject(new Error("as is")))).rejects.toThrow("as is");
    await expect(clientSpan("x", CHECK, () => Promise.reject(new Error("as is")))).rejects.toThrow("as is");
  });
});

describe("tracing to an OTLP/HTTP collector", () => {
  const received: { path: string; contentType: string; tenant: unknown; body: string }[] = [];
  const collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({ path: req.url ?? "", contentType: req.headers["content-type"] ?? "", tenant: req.headers["x-tenant"], body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });

  afterAll(async () => {
    await shutdownTracing();
    await new Promise<void>((resolve) => collector.close(() => resolve()));
  });

  it("exports spans of several services when tracing shuts down", async () => {
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const status = initTracing("account", { env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=drones" } });
    expect(status).toEqual({ enabled: true, exporters: [`otlp ${endpoint}/v1/traces`], warnings: [] });
    // A second service in the same process joins the same pipeline; its env is not read again.
    expect(initTracing("package", { env: {} })).toMatchObject({ enabled: true, exporters: [`otlp ${endpoint}/v1/traces`] });
    expect(initTracing("account").enabled).toBe(true);

    let traceId: string | undefined;
    await serverSpan(
      "/dronedelivery.account.v1.AccountService/GetAccount",
      undefined,
      async () => {
        traceId = currentTraceId();
        await context.with(context.active(), () =>
          clientSpan("127.0.0.1:50052", "/dronedelivery.package.v1.PackageService/GetPackage", async () => "ok"),
        );
      },
      { service: "account" },
    );
    await serverSpan("/dronedelivery.package.v1.PackageService/GetPackage", undefined, async () => undefined, { service: "package" });
    expect(received).toHaveLength(0); // batched until flushed

    await shutdownTracing();
    const body = received.map((r) => r.body).join("\n");
    expect(received.length).toBeGreaterThan(0);
    for (const request of received) {
      expect(request).toMatchObject({ path: "/v1/traces", contentType: "application/json", tenant: "drones" });
    }
    expect(body).toContain("dronedelivery.account.v1.AccountService/GetAccount");
    expect(body).toContain("dronedelivery.package.v1.PackageService/GetPackage");
    expect(body).toContain("account");
    expect(body).toContain("package");
    expect(body).toContain(traceId!);
    expect(currentTraceId()).toBeUndefined();
  });
});
