// Trace context through real transports: gRPC calls on loopback and JetStream messages on a
// private nats-server, wrapped by hand in client, server, producer and consumer spans and recorded
// by the in-memory exporter. The gRPC side is raw grpc-js, so these tests do not depend on the
// spans the platform's binding makes of its own.

import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { SpanKind, SpanStatusCode, context } from "@opentelemetry/api";
import { AckPolicy, headers as natsHeaders, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { notFound } from "../grpc/index.js";
import { connectNats, drainQuietly } from "../nats/connection.js";
import { ensureStreams, STREAMS, subjects } from "../nats/streams.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { clientSpan, serverSpan, startClientSpan, startServerSpan, type TraceCarrier } from "./trace-grpc.js";
import { currentSpanId, currentTraceId, traceLogFields } from "./trace-ids.js";
import { consumerSpan, extractFromHeaders, injectIntoHeaders, producerSpan } from "./trace-nats.js";
import { initTracing, shutdownTracing, useInMemoryTracing, withService, type InMemoryTracing, type ReadableSpan } from "./tracing.js";

const SERVING = HealthCheckResponse_ServingStatus.SERVING;
const CHECK = "/grpc.health.v1.Health/Check";
const WATCH = "/grpc.health.v1.Health/Watch";

// grpc.health.v1.Health over raw grpc-js.
const serializeRequest = (r: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, r));
const deserializeRequest = (b: Buffer) => fromBinary(HealthCheckRequestSchema, b);
const serializeResponse = (r: HealthCheckResponse) => Buffer.from(toBinary(HealthCheckResponseSchema, r));
const deserializeResponse = (b: Buffer) => fromBinary(HealthCheckResponseSchema, b);
const HEALTH: grpc.ServiceDefinition = {
  check: {
    path: CHECK,
    requestStream: false,
    responseStream: false,
    requestSerialize: serializeRequest,
    requestDeserialize: deserializeRequest,
    responseSerialize: serializeResponse,
    responseDeserialize: deserializeResponse,
  },
  watch: {
    path: WATCH,
    requestStream: false,
    responseStream: true,
    requestSerialize: serializeRequest,
    requestDeserialize: deserializeRequest,
    responseSerialize: serializeResponse,
    responseDeserialize: deserializeResponse,
  },
};

const serving = () => create(HealthCheckResponseSchema, { status: SERVING });

function statusOf(err: unknown): Partial<grpc.StatusObject> {
  const code = (err as { code?: unknown }).code;
  return { code: typeof code === "number" ? code : Code.Unknown, details: err instanceof Error ? err.message : String(err) };
}

/** A Health server whose Check and Watch run in server spans of `service`. */
async function startServer(
  service: string,
  behaviour: (request: string) => Promise<void>,
): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server();
  server.addService(HEALTH, {
    check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
      serverSpan(CHECK, call.metadata, async () => {
        await behaviour(call.request.service);
        return serving();
      }, { service }).then(
        (response) => callback(null, response),
        (err: unknown) => callback(statusOf(err)),
      );
    },
    watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      const span = startServerSpan(WATCH, call.metadata, { service });
      span
        .run(async () => {
          await behaviour(call.request.service);
          call.write(serving());
        })
        .then(
          () => {
            span.end();
            call.end();
          },
          (err: unknown) => {
            span.end(err);
            call.emit("error", statusOf(err));
          },
        );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return { server, address: `127.0.0.1:${port}` };
}

function metadataOf(carrier: TraceCarrier): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(carrier)) metadata.set(key, value);
  return metadata;
}

function check(client: grpc.Client, service: string, metadata: grpc.Metadata): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      CHECK,
      serializeRequest,
      deserializeResponse,
      create(HealthCheckRequestSchema, { service }),
      metadata,
      { deadline: Date.now() + 5_000 },
      (err, response) => (err ? reject(err) : resolve(response!)),
    ),
  );
}

/** A unary Check in a client span whose carrier becomes the request metadata. */
function tracedCheck(client: grpc.Client, address: string, service: string, spanService?: string) {
  return clientSpan(
    address,
    CHECK,
    (carrier) => check(client, service, metadataOf(carrier)),
    spanService === undefined ? undefined : { service: spanService },
  );
}

const traceIdOf = (span: ReadableSpan) => span.spanContext().traceId;
const spanIdOf = (span: ReadableSpan) => span.spanContext().spanId;
const serviceNameOf = (span: ReadableSpan) => span.resource.attributes["service.name"];

function only(spans: ReadableSpan[], predicate: (span: ReadableSpan) => boolean, what: string): ReadableSpan {
  const found = spans.filter(predicate);
  if (found.length !== 1) {
    throw new Error(`expected one ${what}, found ${found.length}: ${spans.map((s) => `${s.name}/${SpanKind[s.kind]}`).join(", ")}`);
  }
  return found[0]!;
}

describe("tracing through gRPC and NATS", () => {
  let memory: InMemoryTracing;
  let back: { server: grpc.Server; address: string };
  let front: { server: grpc.Server; address: string };
  let backClient: grpc.Client;
  let frontClient: grpc.Client;
  /** Trace ids the front handler saw in its context (what a pino mixin would log). */
  const seenInHandler: (string | undefined)[] = [];
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    memory = useInMemoryTracing();
    initTracing("gateway");
    initTracing("front");
    initTracing("back");
    back = await startServer("back", async (request) => {
      if (request === "missing") throw notFound("no such service");
    });
    backClient = new grpc.Client(back.address, grpc.credentials.createInsecure());
    front = await startServer("front", async (request) => {
      seenInHandler.push(currentTraceId());
      if (request === "boom") throw new Error("handler bug");
      if (request === "nested" || request === "nested-missing") {
        // Context must survive timers and several awaits before the nested call.
        await sleep(5);
        await Promise.resolve();
        await new Promise<void>((resolve) => setImmediate(resolve));
        seenInHandler.push(currentTraceId());
        await tracedCheck(backClient, back.address, request === "nested" ? "leaf" : "missing");
      }
    });
    frontClient = new grpc.Client(front.address, grpc.credentials.createInsecure());

    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url, name: "tracing-test" });
    js = nc.jetstream();
    jsm = await nc.jetstreamManager();
    await ensureStreams(jsm);
  });

  afterAll(async () => {
    frontClient?.close();
    backClient?.close();
    front?.server.forceShutdown();
    back?.server.forceShutdown();
    await drainQuietly(nc);
    await nats?.stop();
    await shutdownTracing();
  });

  beforeEach(() => {
    memory.reset();
    seenInHandler.length = 0;
  });

  it("makes the server span a child of the client span, in the same trace", async () => {
    const response = await tracedCheck(frontClient, front.address, "plain");
    expect(response.status).toBe(SERVING);

    const spans = memory.spans();
    const client = only(spans, (s) => s.kind === SpanKind.CLIENT, "client span");
    const server = only(spans, (s) => s.kind === SpanKind.SERVER, "server span");
    expect(client.name).toBe("grpc.health.v1.Health/Check");
    expect(server.name).toBe("grpc.health.v1.Health/Check");
    expect(traceIdOf(server)).toBe(traceIdOf(client));
    expect(server.parentSpanContext?.spanId).toBe(spanIdOf(client));
    expect(server.parentSpanContext?.isRemote).toBe(true);
    expect(client.parentSpanContext).toBeUndefined(); // a new trace starts at the first call

    expect(client.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "grpc.health.v1.Health",
      "rpc.method": "Check",
      "rpc.grpc.status_code": 0,
      "server.address": "127.0.0.1",
      "server.port": Number(front.address.split(":")[1]),
    });
    expect(server.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.method": "Check", "rpc.grpc.status_code": 0 });
    expect(client.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.status.code).toBe(SpanStatusCode.UNSET);

    // Each span carries the resource of its own service, though all run in this one process.
    expect(serviceNameOf(client)).toBe("gateway"); // the process default: the first service initialised
    expect(serviceNameOf(server)).toBe("front");
    expect(server.resource.attributes["service.namespace"]).toBe("dronedelivery");
    expect(seenInHandler).toEqual([traceIdOf(client)]);
  });

  it("keeps the trace across awaits: a nested call made by a handler continues it", async () => {
    await withService("gateway", () => tracedCheck(frontClient, front.address, "nested"));

    const spans = memory.spans();
    expect(spans).toHaveLength(4);
    const root = only(spans, (s) => s.kind === SpanKind.CLIENT && serviceNameOf(s) === "gateway", "gateway client span");
    const frontServer = only(spans, (s) => s.kind === SpanKind.SERVER && serviceNameOf(s) === "front", "front server span");
    const nested = only(spans, (s) => s.kind === SpanKind.CLIENT && serviceNameOf(s) === "front", "front client span");
    const backServer = only(spans, (s) => s.kind === SpanKind.SERVER && serviceNameOf(s) === "back", "back server span");

    const traceId = traceIdOf(root);
    for (const span of spans) expect(traceIdOf(span)).toBe(traceId);
    expect(frontServer.parentSpanContext?.spanId).toBe(spanIdOf(root));
    expect(nested.parentSpanContext?.spanId).toBe(spanIdOf(frontServer));
    expect(nested.parentSpanContext?.isRemote).toBeFalsy();
    expect(backServer.parentSpanContext?.spanId).toBe(spanIdOf(nested));
    expect(seenInHandler).toEqual([traceId, traceId]);
  });

  it("keeps concurrent calls in separate traces", async () => {
    await Promise.all(["nested", "nested", "nested"].map((request) => tracedCheck(frontClient, front.address, request, "gateway")));

    const spans = memory.spans();
    expect(spans).toHaveLength(12);
    const roots = spans.filter((s) => s.parentSpanContext === undefined);
    expect(roots).toHaveLength(3);
    expect(new Set(roots.map(traceIdOf)).size).toBe(3);
    for (const root of roots) {
      const inTrace = spans.filter((s) => traceIdOf(s) === traceIdOf(root));
      expect(inTrace.map((s) => SpanKind[s.kind]).sort()).toEqual(["CLIENT", "CLIENT", "SERVER", "SERVER"]);
    }
  });

  it("records the status of a failed call on both sides", async () => {
    await expect(tracedCheck(frontClient, front.address, "nested-missing")).rejects.toMatchObject({ code: Code.NotFound });
    await expect(tracedCheck(frontClient, front.address, "boom")).rejects.toMatchObject({ code: Code.Unknown });

    const spans = memory.spans();
    // NOT_FOUND: the caller's call failed; the server did its job (not an error on its side).
    const backServer = only(spans, (s) => s.kind === SpanKind.SERVER && serviceNameOf(s) === "back", "back server span");
    expect(backServer.attributes["rpc.grpc.status_code"]).toBe(Code.NotFound);
    expect(backServer.status.code).toBe(SpanStatusCode.UNSET);
    const nested = only(spans, (s) => s.kind === SpanKind.CLIENT && serviceNameOf(s) === "front", "front client span");
    expect(nested.attributes["rpc.grpc.status_code"]).toBe(Code.NotFound);
    expect(nested.attributes["error.type"]).toBe("NOT_FOUND");
    expect(nested.status).toMatchObject({ code: SpanStatusCode.ERROR });
    expect(nested.status.message).toContain("no such service");
    expect(nested.events.map((e) => e.name)).toContain("exception");

    // A handler that throws: an error on both sides.
    const boomServer = only(
      spans,
      (s) => s.kind === SpanKind.SERVER && serviceNameOf(s) === "front" && s.status.message?.includes("handler bug") === true,
      "failed front server span",
    );
    expect(boomServer.status.code).toBe(SpanStatusCode.ERROR);
    expect(boomServer.attributes["rpc.grpc.status_code"]).toBe(Code.Unknown);
    const boomClient = only(
      spans,
      (s) => s.kind === SpanKind.CLIENT && traceIdOf(s) === traceIdOf(boomServer),
      "client span of the failed call",
    );
    expect(boomClient.status.code).toBe(SpanStatusCode.ERROR);
    expect(boomClient.attributes["rpc.grpc.status_code"]).toBe(Code.Unknown);
    expect(boomClient.attributes["error.type"]).toBe("UNKNOWN");
  });

  it("traces a server-streaming call with startClientSpan and startServerSpan", async () => {
    const span = startClientSpan(front.address, WATCH, { service: "gateway" });
    expect(span.carrier.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const call = frontClient.makeServerStreamRequest(
      WATCH,
      serializeRequest,
      deserializeResponse,
      create(HealthCheckRequestSchema, { service: "plain" }),
      metadataOf(span.carrier),
    );
    try {
      const updates: HealthCheckResponse[] = [];
      for await (const update of call as AsyncIterable<HealthCheckResponse>) updates.push(update);
      expect(updates.map((u) => u.status)).toEqual([SERVING]);
      span.end();
    } catch (err) {
      span.end(err);
      throw err;
    }
    await expect.poll(() => memory.spans().length).toBe(2);
    const spans = memory.spans();
    const client = only(spans, (s) => s.kind === SpanKind.CLIENT, "client span");
    const server = only(spans, (s) => s.kind === SpanKind.SERVER, "server span");
    expect(client.name).toBe("grpc.health.v1.Health/Watch");
    expect(server.parentSpanContext?.spanId).toBe(spanIdOf(client));
    expect(traceIdOf(server)).toBe(traceIdOf(client));
    expect(seenInHandler).toEqual([traceIdOf(client)]);
  });

  it("carries the trace through JetStream headers from producer to consumer", async () => {
    const subject = subjects.scheduleRequest("d-trace-1");
    // Ingestion: a handler (server span) publishes the command.
    let producerTraceId: string | undefined;
    const ack = await serverSpan(
      "/dronedelivery.ingestion.v1.IngestionService/ScheduleDelivery",
      undefined,
      async () => {
        producerTraceId = currentTraceId();
        const h = natsHeaders();
        return producerSpan(subject, h, () => js.publish(subject, new TextEncoder().encode("command"), { headers: h, msgID: "d-trace-1:schedule" }), {
          messageId: "d-trace-1:schedule",
          template: "delivery.request.schedule.*",
        });
      },
      { service: "ingestion" },
    );
    expect(ack.stream).toBe(STREAMS.DELIVERY_REQUESTS.name);

    // Scheduler: reads it and makes a gRPC call while handling it.
    await jsm.consumers.add(STREAMS.DELIVERY_REQUESTS.name, {
      durable_name: "tracing-test",
      ack_policy: AckPolicy.Explicit,
      filter_subject: subject,
    });
    const consumer = await js.consumers.get(STREAMS.DELIVERY_REQUESTS.name, "tracing-test");
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg).not.toBeNull();
    expect(msg!.headers?.get("traceparent")).toMatch(/^00-/);
    const handledIn = await withService("scheduler", () =>
      consumerSpan(msg!.subject, msg!.headers, async () => {
        await sleep(5);
        const seen = currentTraceId();
        await tracedCheck(backClient, back.address, "leaf");
        return seen;
      }),
    );
    await msg!.ackAck();

    const spans = memory.spans();
    const ingestion = only(spans, (s) => s.kind === SpanKind.SERVER && serviceNameOf(s) === "ingestion", "ingestion server span");
    const producer = only(spans, (s) => s.kind === SpanKind.PRODUCER, "producer span");
    const consumerSpanRecord = only(spans, (s) => s.kind === SpanKind.CONSUMER, "consumer span");
    const call = only(spans, (s) => s.kind === SpanKind.CLIENT, "client span");
    const backServer = only(spans, (s) => s.kind === SpanKind.SERVER && serviceNameOf(s) === "back", "back server span");

    const traceId = traceIdOf(ingestion);
    expect(producerTraceId).toBe(traceId);
    expect(handledIn).toBe(traceId);
    for (const span of [producer, consumerSpanRecord, call, backServer]) expect(traceIdOf(span)).toBe(traceId);
    expect(producer.parentSpanContext?.spanId).toBe(spanIdOf(ingestion));
    expect(consumerSpanRecord.parentSpanContext?.spanId).toBe(spanIdOf(producer));
    expect(call.parentSpanContext?.spanId).toBe(spanIdOf(consumerSpanRecord));
    expect(backServer.parentSpanContext?.spanId).toBe(spanIdOf(call));

    expect(producer.name).toBe("publish delivery.request.schedule.*");
    expect(producer.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": subject,
      "messaging.operation.type": "send",
      "messaging.message.id": "d-trace-1:schedule",
    });
    expect(consumerSpanRecord.name).toBe(`process ${subject}`);
    expect(consumerSpanRecord.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": subject,
      "messaging.operation.type": "process",
      "messaging.message.id": "d-trace-1:schedule",
    });
    expect(serviceNameOf(producer)).toBe("ingestion");
    expect(serviceNameOf(consumerSpanRecord)).toBe("scheduler");
    expect(serviceNameOf(call)).toBe("scheduler");
  });

  it("records a failed publish and a failed handler as errors", async () => {
    const h = natsHeaders();
    await expect(
      producerSpan("no.stream.here", h, () => js.publish("no.stream.here", new Uint8Array(), { headers: h, timeout: 2_000 }), {
        service: "ingestion",
      }),
    ).rejects.toThrow();
    const received = natsHeaders();
    injectIntoHeaders(received); // no active span: nothing written
    expect(received.has("traceparent")).toBe(false);
    await expect(consumerSpan("delivery.d-1.status", h, () => Promise.reject(new Error("cannot apply")))).rejects.toThrow("cannot apply");

    const spans = memory.spans();
    const producer = only(spans, (s) => s.kind === SpanKind.PRODUCER, "producer span");
    const consumer = only(spans, (s) => s.kind === SpanKind.CONSUMER, "consumer span");
    expect(producer.status.code).toBe(SpanStatusCode.ERROR);
    expect(consumer.status).toMatchObject({ code: SpanStatusCode.ERROR, message: "cannot apply" });
    expect(consumer.parentSpanContext?.spanId).toBe(spanIdOf(producer)); // the headers still carried the context
  });

  it("reads trace context from headers in any case, and ignores garbage", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const h = natsHeaders();
    h.set("Traceparent", traceparent);
    await context.with(extractFromHeaders(h), async () => {
      await sleep(1);
      expect(currentTraceId()).toBe("0af7651916cd43dd8448eb211c80319c");
      expect(currentSpanId()).toBe("b7ad6b7169203331");
      expect(traceLogFields()).toEqual({ trace_id: "0af7651916cd43dd8448eb211c80319c", span_id: "b7ad6b7169203331" });
    });
    const bad = natsHeaders();
    bad.set("traceparent", "not-a-traceparent");
    await context.with(extractFromHeaders(bad), async () => expect(currentTraceId()).toBeUndefined());
    await context.with(extractFromHeaders(undefined), async () => expect(currentTraceId()).toBeUndefined());
    expect(traceLogFields()).toEqual({});

    // A server span takes its parent from the request metadata, whatever else is active.
    const metadata = new grpc.Metadata();
    metadata.set("traceparent", traceparent);
    await serverSpan(CHECK, metadata, async () => {
      await serverSpan(CHECK, new grpc.Metadata(), async () => undefined, { service: "back" });
    }, { service: "front" });
    const [inner, outer] = memory.spans();
    expect(traceIdOf(outer!)).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(outer!.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    expect(inner!.parentSpanContext).toBeUndefined();
    expect(traceIdOf(inner!)).not.toBe(traceIdOf(outer!));
  });

  it("starts again after shutdown, and is off (but harmless) in between", async () => {
    await shutdownTracing();
    expect(initTracing("front", { env: {} })).toEqual({ enabled: false, exporters: [], warnings: [] });
    const carrier = await clientSpan(front.address, CHECK, async (c) => c);
    expect(carrier).toEqual({});
    expect(await serverSpan(CHECK, undefined, async () => currentTraceId())).toBeUndefined();
    expect(memory.spans()).toHaveLength(0);

    memory = useInMemoryTracing();
    await tracedCheck(frontClient, front.address, "plain");
    expect(memory.spans()).toHaveLength(2);
    expect(serviceNameOf(memory.spans()[0]!)).toBe("front");
  });
});
