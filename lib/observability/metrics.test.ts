import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code } from "@connectrpc/connect";
import { AckPolicy, DeliverPolicy, nanos, type JetStreamClient, type JetStreamManager, type JsMsg, type NatsConnection } from "nats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { connectNats, drainQuietly } from "../nats/connection.js";
import { grpcCodeName, httpMethodLabel, httpStatusLabel, methodLabels, subjectRootLabel } from "./metrics-labels.js";
import { createMetricsHandler, metricsHandler, startMetricsServer, type RunningMetricsServer } from "./metrics-server.js";
import {
  DURATION_BUCKETS_SECONDS,
  GRPC_CODE_NAMES,
  initMetrics,
  metricsRegistry,
  recordBulkheadRejection,
  recordClientCall,
  recordHttpRequest,
  recordPublish,
  recordRetry,
  readServiceVersion,
  recordServerCall,
  serviceVersion,
  resetMetricsForTests,
  setCircuitState,
  startClientCallTimer,
  startServerCallTimer,
  watchConsumer,
} from "./metrics.js";

const SERVICE = "metrics-test";
const ACCOUNT = "dronedelivery.account.v1.AccountService";
const DELIVERY = "dronedelivery.delivery.v1.DeliveryService";

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text exposition into samples (comments left out). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (match === null) throw new Error(`unreadable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1] ?? ""] = label[2] ?? "";
    }
    samples.push({ name: match[1] ?? "", labels, value: Number(match[3]) });
  }
  return samples;
}

/** Samples named `name` whose labels include every one of `labels`. */
function select(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample named `name` with `labels`; undefined when there is none. */
function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = select(samples, name, labels);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

async function scrape(url: string): Promise<{ response: Response; samples: Sample[] }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return { response, samples: parseExposition(await response.text()) };
}

let server: RunningMetricsServer;

beforeAll(async () => {
  expect(initMetrics(SERVICE)).toBe(SERVICE);
  server = await startMetricsServer({ host: "127.0.0.1", port: 0 });
});

afterAll(async () => {
  await server.close();
});

afterEach(() => {
  resetMetricsForTests();
});

describe("labels", () => {
  it("splits method paths and maps anything else to unknown", () => {
    expect(methodLabels(`/${ACCOUNT}/GetAccount`)).toEqual({ grpc_service: ACCOUNT, grpc_method: "GetAccount" });
    for (const bad of ["", "/", "GetAccount", `/${ACCOUNT}`, `/${ACCOUNT}/Get/Account`, "/a b/C"]) {
      expect(methodLabels(bad)).toEqual({ grpc_service: "unknown", grpc_method: "unknown" });
    }
  });

  it("names gRPC codes from numbers or names, and anything else UNKNOWN", () => {
    expect(GRPC_CODE_NAMES).toHaveLength(17);
    expect(grpcCodeName(Code.NotFound)).toBe("NOT_FOUND");
    expect(grpcCodeName(0)).toBe("OK");
    expect(grpcCodeName("not_found")).toBe("NOT_FOUND");
    expect(grpcCodeName("OK")).toBe("OK");
    expect(grpcCodeName(99)).toBe("UNKNOWN");
    expect(grpcCodeName("d-123")).toBe("UNKNOWN");
  });

  it("reads the build's version from SERVICE_VERSION, else dev, and refuses unbounded values", () => {
    expect(readServiceVersion({})).toBe("dev");
    expect(readServiceVersion({ SERVICE_VERSION: " 2.1.0-rc.1 " })).toBe("2.1.0-rc.1");
    expect(() => readServiceVersion({ SERVICE_VERSION: "a b" })).toThrow(/SERVICE_VERSION/);
    expect(() => readServiceVersion({ SERVICE_VERSION: "x".repeat(65) })).toThrow(/SERVICE_VERSION/);
  });

  it("bounds HTTP methods, statuses and subject roots", () => {
    expect(httpMethodLabel("get")).toBe("GET");
    expect(httpMethodLabel("PROPFIND")).toBe("OTHER");
    expect(httpMethodLabel(undefined)).toBe("OTHER");
    expect(httpStatusLabel(204)).toBe("204");
    expect(httpStatusLabel(42)).toBe("unknown");
    expect(subjectRootLabel("delivery.d-1.status")).toBe("delivery");
    expect(subjectRootLabel("")).toBe("unknown");
  });
});

describe("metrics over HTTP", () => {
  it("keeps the first service name and serves the process metrics with it", async () => {
    expect(initMetrics("another-name")).toBe(SERVICE);
    const { response, samples } = await scrape(server.url);
    expect(response.headers.get("content-type")).toBe(metricsRegistry().contentType);
    expect(valueOf(samples, "process_cpu_user_seconds_total", { service: SERVICE })).toBeGreaterThan(0);
    expect(select(samples, "nodejs_heap_size_used_bytes", { service: SERVICE })).toHaveLength(1);
  });

  it("records served calls by method and code, with durations", async () => {
    recordServerCall(`/${ACCOUNT}/GetAccount`, "OK", 0.004);
    recordServerCall(`/${ACCOUNT}/GetAccount`, "OK", 0.02);
    recordServerCall(`/${ACCOUNT}/GetAccount`, Code.NotFound, 0.0005);
    recordServerCall(`/${DELIVERY}/ScheduleDelivery`, "INVALID_ARGUMENT", 3);
    const done = startServerCallTimer(`/${DELIVERY}/GetDelivery`);
    done(0);

    const { samples } = await scrape(server.url);
    const getAccount = { grpc_service: ACCOUNT, grpc_method: "GetAccount" };
    expect(valueOf(samples, "rpc_server_handled_total", { service: SERVICE, ...getAccount, grpc_code: "OK" })).toBe(2);
    expect(valueOf(samples, "rpc_server_handled_total", { ...getAccount, grpc_code: "NOT_FOUND" })).toBe(1);
    expect(
      valueOf(samples, "rpc_server_handled_total", { grpc_service: DELIVERY, grpc_method: "ScheduleDelivery", grpc_code: "INVALID_ARGUMENT" }),
    ).toBe(1);
    expect(valueOf(samples, "rpc_server_handled_total", { grpc_method: "GetDelivery", grpc_code: "OK" })).toBe(1);

    expect(valueOf(samples, "rpc_server_handling_seconds_count", { service: SERVICE, ...getAccount })).toBe(3);
    expect(valueOf(samples, "rpc_server_handling_seconds_sum", getAccount)).toBeCloseTo(0.0245, 6);
    expect(valueOf(samples, "rpc_server_handling_seconds_bucket", { ...getAccount, le: "0.001" })).toBe(1);
    expect(valueOf(samples, "rpc_server_handling_seconds_bucket", { ...getAccount, le: "0.005" })).toBe(2);
    expect(valueOf(samples, "rpc_server_handling_seconds_bucket", { ...getAccount, le: "0.025" })).toBe(3);
    expect(valueOf(samples, "rpc_server_handling_seconds_bucket", { ...getAccount, le: "+Inf" })).toBe(3);
    const buckets = select(samples, "rpc_server_handling_seconds_bucket", getAccount).map((s) => s.labels["le"]);
    expect(buckets).toEqual([...DURATION_BUCKETS_SECONDS.map(String), "+Inf"]);
    expect(valueOf(samples, "rpc_server_handling_seconds_count", { grpc_method: "GetDelivery" })).toBe(1);
    // The histogram has no code label: one series per method.
    expect(select(samples, "rpc_server_handling_seconds_count", getAccount)).toHaveLength(1);
    // Served calls carry the process's version (SERVICE_VERSION, "dev" here), so that two builds
    // of a service side by side can be told apart.
    expect(serviceVersion()).toBe(readServiceVersion(process.env));
    expect(valueOf(samples, "rpc_server_handled_total", { ...getAccount, grpc_code: "OK", version: serviceVersion() })).toBe(2);
    expect(valueOf(samples, "rpc_server_handling_seconds_count", { ...getAccount, version: serviceVersion() })).toBe(3);
  });

  it("records client calls, retries and bulkhead rejections by target", async () => {
    recordClientCall("account", `/${ACCOUNT}/GetAccount`, "OK", 0.01);
    recordClientCall("account", `/${ACCOUNT}/GetAccount`, "UNAVAILABLE", 0.2);
    recordClientCall("delivery", `/${DELIVERY}/GetDelivery`, Code.DeadlineExceeded, 1.5);
    startClientCallTimer("delivery", `/${DELIVERY}/GetDelivery`)("OK");
    recordRetry("account", `/${ACCOUNT}/GetAccount`);
    recordRetry("account", `/${ACCOUNT}/GetAccount`);
    recordBulkheadRejection("delivery");

    const { samples } = await scrape(server.url);
    const account = { target: "account", grpc_service: ACCOUNT, grpc_method: "GetAccount" };
    expect(valueOf(samples, "rpc_client_handled_total", { service: SERVICE, ...account, grpc_code: "OK" })).toBe(1);
    expect(valueOf(samples, "rpc_client_handled_total", { ...account, grpc_code: "UNAVAILABLE" })).toBe(1);
    expect(valueOf(samples, "rpc_client_handled_total", { target: "delivery", grpc_code: "DEADLINE_EXCEEDED" })).toBe(1);
    expect(valueOf(samples, "rpc_client_handled_total", { target: "delivery", grpc_code: "OK" })).toBe(1);
    expect(valueOf(samples, "rpc_client_handling_seconds_count", account)).toBe(2);
    expect(valueOf(samples, "rpc_client_handling_seconds_sum", account)).toBeCloseTo(0.21, 6);
    expect(valueOf(samples, "rpc_client_handling_seconds_bucket", { ...account, le: "0.1" })).toBe(1);
    expect(valueOf(samples, "rpc_client_handling_seconds_count", { target: "delivery" })).toBe(2);
    expect(valueOf(samples, "rpc_client_retries_total", account)).toBe(2);
    expect(valueOf(samples, "rpc_client_bulkhead_rejected_total", { service: SERVICE, target: "delivery" })).toBe(1);
  });

  it("follows circuit breaker states and counts each opening once", async () => {
    setCircuitState("package", "closed");
    let { samples } = await scrape(server.url);
    expect(valueOf(samples, "rpc_client_circuit_state", { target: "package" })).toBe(0);
    expect(valueOf(samples, "rpc_client_circuit_opened_total", { target: "package" })).toBe(0);

    setCircuitState("package", "open");
    setCircuitState("package", "open"); // still open: not a second opening
    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "rpc_client_circuit_state", { target: "package" })).toBe(2);
    expect(valueOf(samples, "rpc_client_circuit_opened_total", { target: "package" })).toBe(1);

    setCircuitState("package", "half_open");
    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "rpc_client_circuit_state", { target: "package" })).toBe(1);

    setCircuitState("package", "open");
    setCircuitState("drone", "open");
    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "rpc_client_circuit_opened_total", { service: SERVICE, target: "package" })).toBe(2);
    expect(valueOf(samples, "rpc_client_circuit_opened_total", { target: "drone" })).toBe(1);

    setCircuitState("package", "closed");
    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "rpc_client_circuit_state", { target: "package" })).toBe(0);
    expect(valueOf(samples, "rpc_client_circuit_opened_total", { target: "package" })).toBe(2);
    expect(() => setCircuitState("package", "broken" as "open")).toThrow(TypeError);
  });

  it("records gateway HTTP requests with bounded labels", async () => {
    recordHttpRequest("rest", "GET", 200, 0.003);
    recordHttpRequest("rest", "get", 200, 0.004);
    recordHttpRequest("rest", "POST", 400, 0.002);
    recordHttpRequest("connect", "POST", 200, 0.05);
    recordHttpRequest("grpc-web", "POST", 200, 0.06);
    recordHttpRequest("grpc", "POST", 200, 0.07);
    recordHttpRequest("bogus" as "other", "BREW", 418, 0.001);

    const { samples } = await scrape(server.url);
    expect(valueOf(samples, "http_server_requests_total", { service: SERVICE, route_kind: "rest", method: "GET", status: "200" })).toBe(2);
    expect(valueOf(samples, "http_server_requests_total", { route_kind: "rest", method: "POST", status: "400" })).toBe(1);
    expect(valueOf(samples, "http_server_requests_total", { route_kind: "connect", method: "POST", status: "200" })).toBe(1);
    expect(valueOf(samples, "http_server_requests_total", { route_kind: "grpc-web" })).toBe(1);
    expect(valueOf(samples, "http_server_requests_total", { route_kind: "grpc" })).toBe(1);
    expect(valueOf(samples, "http_server_requests_total", { route_kind: "other", method: "OTHER", status: "418" })).toBe(1);
    expect(valueOf(samples, "http_server_request_duration_seconds_count", { route_kind: "rest", method: "GET" })).toBe(2);
    expect(valueOf(samples, "http_server_request_duration_seconds_sum", { route_kind: "rest", method: "GET" })).toBeCloseTo(0.007, 6);
  });

  it("counts publishes by subject root", async () => {
    recordPublish("delivery.d-1.status");
    recordPublish("delivery.d-2.status");
    recordPublish("drone.drone-7.location");
    const { samples } = await scrape(server.url);
    expect(valueOf(samples, "nats_published_total", { subject_root: "delivery" })).toBe(2);
    expect(valueOf(samples, "nats_published_total", { subject_root: "drone" })).toBe(1);
    expect(select(samples, "nats_published_total").every((s) => !s.labels["subject_root"]?.includes("d-1"))).toBe(true);
  });

  it("starts from zero after resetMetricsForTests", async () => {
    recordServerCall(`/${ACCOUNT}/GetAccount`, "OK", 0.01);
    resetMetricsForTests();
    const { samples } = await scrape(server.url);
    expect(select(samples, "rpc_server_handled_total")).toHaveLength(0);
    expect(select(samples, "rpc_server_handling_seconds_count")).toHaveLength(0);
    // The process metrics stay.
    expect(valueOf(samples, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
  });
});

describe("metrics server", () => {
  it("answers 404 on other paths, 405 for other methods, and HEAD without a body", async () => {
    const base = server.url.replace(/\/metrics$/, "");
    const notFound = await fetch(`${base}/other`);
    expect(notFound.status).toBe(404);
    await notFound.text();

    const withQuery = await fetch(`${server.url}?x=1`);
    expect(withQuery.status).toBe(200);
    await withQuery.text();

    const post = await fetch(server.url, { method: "POST", body: "" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    await post.text();

    const head = await fetch(server.url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe(metricsRegistry().contentType);
    expect(await head.text()).toBe("");
  });

  it("lets another HTTP server serve /metrics with metricsHandler", async () => {
    recordHttpRequest("rest", "GET", 200, 0.01);
    const own = http.createServer((req, res) => {
      if ((req.url ?? "").startsWith("/metrics")) metricsHandler(req, res);
      else res.end("app");
    });
    await new Promise<void>((resolve) => own.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = own.address() as AddressInfo;
      const { samples } = await scrape(`http://127.0.0.1:${port}/metrics`);
      expect(valueOf(samples, "http_server_requests_total", { route_kind: "rest", method: "GET", status: "200" })).toBe(1);
    } finally {
      own.closeAllConnections();
      await new Promise<void>((resolve) => own.close(() => resolve()));
    }
  });

  it("serves a registry of its own, and close() can be called twice", async () => {
    const { Registry, Counter } = await import("prom-client");
    const registry = new Registry();
    new Counter({ name: "only_here_total", help: "A counter of a private registry.", registers: [registry] }).inc(3);
    const own = await startMetricsServer({ port: 0, registry });
    try {
      expect(own.host).toBe("127.0.0.1");
      expect(own.port).toBeGreaterThan(0);
      const { samples } = await scrape(own.url);
      expect(valueOf(samples, "only_here_total")).toBe(3);
      expect(select(samples, "rpc_server_handled_total")).toHaveLength(0);
      expect(createMetricsHandler(registry)).toBeTypeOf("function");
    } finally {
      await own.close();
      await own.close();
    }
  });
});

describe("JetStream consumer gauges", () => {
  const STREAM = "METRICS_TEST";
  const DURABLE = "metrics-worker";
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  /** Messages the first test leaves undelivered; the later tests read the same consumer. */
  let pendingLeft = 5;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url, name: "metrics-test" });
    js = nc.jetstream();
    jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: STREAM, subjects: ["metrics.test.>"] });
    await jsm.consumers.add(STREAM, {
      durable_name: DURABLE,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(60_000),
    });
  });

  afterAll(async () => {
    if (nc !== undefined) await drainQuietly(nc);
    await nats?.stop();
  });

  /** Waits until the consumer's own info shows `predicate` (the server applies acks and naks asynchronously). */
  async function consumerSettles(predicate: (info: { pending: number; ackPending: number; redelivered: number }) => boolean): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const info = await jsm.consumers.info(STREAM, DURABLE);
      if (predicate({ pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered })) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("the consumer did not reach the expected state");
  }

  it("reports pending, ack-pending and redelivered messages at scrape time", async () => {
    const unwatch = watchConsumer(jsm, STREAM, DURABLE);
    const labels = { service: SERVICE, stream: STREAM, consumer: DURABLE };

    let { samples } = await scrape(server.url);
    expect(valueOf(samples, "nats_consumer_pending_messages", labels)).toBe(0);
    expect(valueOf(samples, "nats_consumer_ack_pending", labels)).toBe(0);
    expect(valueOf(samples, "nats_consumer_redelivered_messages", labels)).toBe(0);

    for (let i = 1; i <= 5; i++) await js.publish(`metrics.test.${i}`, new TextEncoder().encode(`m${i}`));
    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "nats_consumer_pending_messages", labels)).toBe(5);

    // Take two without acknowledging them and hand one back; take more until it comes again. The
    // server applies the nak asynchronously, so a fresh message may come first.
    const consumer = await js.consumers.get(STREAM, DURABLE);
    const held: JsMsg[] = [];
    for await (const msg of await consumer.fetch({ max_messages: 2, expires: 5_000 })) held.push(msg);
    expect(held).toHaveLength(2);
    held[0]?.nak();
    await nc.flush();
    let redelivered: JsMsg | undefined;
    while (redelivered === undefined && held.length < 6) {
      const msg = await consumer.next({ expires: 5_000 });
      if (msg === null) break;
      if (msg.redelivered) redelivered = msg;
      else held.push(msg);
    }
    expect(redelivered?.seq).toBe(held[0]?.seq);
    const distinct = held.length; // every message delivered so far, none acknowledged
    await consumerSettles((s) => s.redelivered === 1 && s.ackPending === distinct);

    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "nats_consumer_pending_messages", labels)).toBe(5 - distinct);
    expect(valueOf(samples, "nats_consumer_ack_pending", labels)).toBe(distinct);
    expect(valueOf(samples, "nats_consumer_redelivered_messages", labels)).toBe(1);
    expect(valueOf(samples, "nats_consumer_info_errors_total", labels)).toBe(0);

    // Acknowledged messages leave the gauges.
    await redelivered?.ackAck();
    for (const msg of held.slice(1)) await msg.ackAck();
    ({ samples } = await scrape(server.url));
    expect(valueOf(samples, "nats_consumer_ack_pending", labels)).toBe(0);
    expect(valueOf(samples, "nats_consumer_redelivered_messages", labels)).toBe(0);
    expect(valueOf(samples, "nats_consumer_pending_messages", labels)).toBe(5 - distinct);
    pendingLeft = 5 - distinct;

    unwatch();
    unwatch();
    ({ samples } = await scrape(server.url));
    expect(select(samples, "nats_consumer_pending_messages", { consumer: DURABLE })).toHaveLength(0);
    expect(select(samples, "nats_consumer_ack_pending", { consumer: DURABLE })).toHaveLength(0);
  });

  it("leaves out a consumer whose info cannot be read, and counts the failure", async () => {
    const stopMissing = watchConsumer(jsm, STREAM, "no-such-consumer");
    const stopPresent = watchConsumer(jsm, STREAM, DURABLE);
    try {
      const { samples } = await scrape(server.url);
      expect(select(samples, "nats_consumer_pending_messages", { consumer: "no-such-consumer" })).toHaveLength(0);
      expect(valueOf(samples, "nats_consumer_info_errors_total", { stream: STREAM, consumer: "no-such-consumer" })).toBe(1);
      expect(valueOf(samples, "nats_consumer_pending_messages", { stream: STREAM, consumer: DURABLE })).toBe(pendingLeft);
    } finally {
      stopMissing();
      stopPresent();
    }
  });

  it("keeps scraping when the NATS connection is closed", async () => {
    const other = await connectNats({ url: nats.url, name: "metrics-test-closed" });
    const otherJsm = await other.jetstreamManager();
    const unwatch = watchConsumer(otherJsm, STREAM, DURABLE, { timeoutMs: 1_000 });
    try {
      let { samples } = await scrape(server.url);
      expect(valueOf(samples, "nats_consumer_pending_messages", { consumer: DURABLE })).toBe(pendingLeft);
      await other.close();
      ({ samples } = await scrape(server.url));
      expect(select(samples, "nats_consumer_pending_messages", { consumer: DURABLE })).toHaveLength(0);
      expect(valueOf(samples, "nats_consumer_info_errors_total", { consumer: DURABLE })).toBe(1);
      expect(valueOf(samples, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    } finally {
      unwatch();
    }
  });
});
