/**
 * The process's Prometheus metrics: one prom-client Registry, the Node.js process metrics, and the
 * functions the communication layer calls to record what it does (gRPC calls served and made,
 * retries, circuit breaker state, bulkhead rejections, JetStream consumer backlog, NATS publishes,
 * gateway HTTP requests). Every metric name, label and default is listed in METRICS.md beside this
 * file; metrics-server.ts serves the registry over HTTP.
 *
 * Labels only take bounded values: method paths, status code names, HTTP methods and route kinds
 * are mapped onto fixed sets (metrics-labels.ts); targets, streams and consumers are names from
 * configuration. Never pass a delivery, drone or request id as a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { JetStreamManager } from "nats";
import {
  grpcCodeName,
  httpMethodLabel,
  httpStatusLabel,
  methodLabels,
  routeKindLabel,
  subjectRootLabel,
  type HttpRouteKind,
} from "./metrics-labels.js";

export { GRPC_CODE_NAMES, type HttpRouteKind } from "./metrics-labels.js";

/** Histogram buckets (seconds) of call and request durations: 1 ms to 10 s. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** How long a scrape waits for one consumer's info before leaving its gauges out. */
export const DEFAULT_CONSUMER_INFO_TIMEOUT_MS = 2_000;

const registry = new Registry();

/** The process's one registry: every platform metric and the process metrics are in it. */
export function metricsRegistry(): Registry {
  return registry;
}

let serviceLabel: string | undefined;

/** The version of a build when SERVICE_VERSION does not name one. */
export const DEFAULT_SERVICE_VERSION = "dev";

/** The build's version from SERVICE_VERSION (e.g. `1.4.0`, `canary`), else "dev". */
export function readServiceVersion(env: Readonly<Record<string, string | undefined>>): string {
  const version = env["SERVICE_VERSION"]?.trim();
  if (version === undefined || version === "") return DEFAULT_SERVICE_VERSION;
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(version)) {
    throw new Error(`SERVICE_VERSION="${version}": letters, digits, ".", "_", "+" and "-" only, at most 64`);
  }
  return version;
}

let versionLabel: string = readServiceVersion(process.env);

/** The `version` label of this process's served calls: two builds of a service side by side differ by it. */
export function serviceVersion(): string {
  return versionLabel;
}

/**
 * Names the process and turns on the Node.js process metrics (CPU, memory, event loop lag, GC,
 * handles, ...). Every series of the registry then carries `service="<serviceName>"`, and the
 * served-call metrics `version="<version>"` (default: SERVICE_VERSION, else "dev"). Call it once,
 * from the process's entry point; the first name given wins, later calls change nothing (tests
 * run several services in one process) and return the name in force.
 */
export function initMetrics(serviceName: string, version: string = readServiceVersion(process.env)): string {
  if (serviceLabel !== undefined) return serviceLabel;
  if (serviceName.trim() === "") throw new TypeError("initMetrics: the service name is empty");
  serviceLabel = serviceName;
  versionLabel = version;
  registry.setDefaultLabels({ service: serviceName });
  collectDefaultMetrics({ register: registry });
  return serviceName;
}

// ---------------------------------------------------------------------------------------------
// gRPC server side

const serverHandled = new Counter({
  name: "rpc_server_handled_total",
  help: "gRPC calls completed by this server, by method, status code and the server's version.",
  labelNames: ["grpc_service", "grpc_method", "grpc_code", "version"] as const,
  registers: [registry],
});

const serverHandling = new Histogram({
  name: "rpc_server_handling_seconds",
  help: "Time from a gRPC call's arrival to its final status on this server (whole stream for streaming calls), by method and the server's version.",
  labelNames: ["grpc_service", "grpc_method", "version"] as const,
  buckets: [...DURATION_BUCKETS_SECONDS],
  registers: [registry],
});

/**
 * Records one served call: `fullMethodPath` is `/package.Service/Method`, `code` the gRPC status
 * as a name ("OK", "NOT_FOUND") or number, `seconds` how long the call took.
 */
export function recordServerCall(fullMethodPath: string, code: string | number, seconds: number): void {
  const labels = callLabels("", fullMethodPath, code);
  serverHandled.inc(labels.handled);
  serverHandling.observe(labels.timed, nonNegative(seconds));
}

/** The label sets of one kind of call, made once: prom-client only reads the labels it is given. */
interface CallLabels {
  readonly handled: Readonly<Record<string, string>>;
  readonly timed: Readonly<Record<string, string>>;
}

/** Label sets by target, method path and code; bounded by the cap, as the labels' values are. */
const callLabelSets = new Map<string, CallLabels>();
const MAX_CALL_LABEL_SETS = 10_000;

/**
 * The labels of a call by `target` ("" for a served call, which carries the process's version)
 * to `path` that ended with `code`.
 */
function callLabels(target: string, path: string, code: string | number): CallLabels {
  const key = `${target}\u0000${path}\u0000${code}\u0000${target === "" ? versionLabel : ""}`;
  let labels = callLabelSets.get(key);
  if (labels === undefined) {
    const method = methodLabels(path);
    const timed = target === "" ? { ...method, version: versionLabel } : { target, ...method };
    labels = Object.freeze({
      handled: Object.freeze({ ...timed, grpc_code: grpcCodeName(code) }),
      timed: Object.freeze(timed),
    });
    if (callLabelSets.size >= MAX_CALL_LABEL_SETS) callLabelSets.clear();
    callLabelSets.set(key, labels);
  }
  return labels;
}

/** Starts timing a served call; the returned function records it with its final status code. */
export function startServerCallTimer(fullMethodPath: string): (code: string | number) => void {
  const started = process.hrtime.bigint();
  return (code) => recordServerCall(fullMethodPath, code, secondsSince(started));
}

// ---------------------------------------------------------------------------------------------
// gRPC client side

const clientHandled = new Counter({
  name: "rpc_client_handled_total",
  help: "gRPC calls completed by this process's clients, by target, method and status code.",
  labelNames: ["target", "grpc_service", "grpc_method", "grpc_code"] as const,
  registers: [registry],
});

const clientHandling = new Histogram({
  name: "rpc_client_handling_seconds",
  help: "Time from starting a gRPC call to its final status as the caller sees it, every attempt of a retried call included.",
  labelNames: ["target", "grpc_service", "grpc_method"] as const,
  buckets: [...DURATION_BUCKETS_SECONDS],
  registers: [registry],
});

const clientRetries = new Counter({
  name: "rpc_client_retries_total",
  help: "gRPC call attempts made again after a failed attempt, by target and method.",
  labelNames: ["target", "grpc_service", "grpc_method"] as const,
  registers: [registry],
});

/**
 * Records one call made by a client, once per call as its caller sees it (after any retries):
 * `target` names the dependency (the service's short name or configured address, never a
 * per-request value), `path` is `/package.Service/Method`, `code` the final gRPC status.
 */
export function recordClientCall(target: string, path: string, code: string | number, seconds: number): void {
  const labels = callLabels(target, path, code);
  clientHandled.inc(labels.handled);
  clientHandling.observe(labels.timed, nonNegative(seconds));
}

/** Starts timing a client call; the returned function records it with its final status code. */
export function startClientCallTimer(target: string, path: string): (code: string | number) => void {
  const started = performance.now();
  return (code) => recordClientCall(target, path, code, (performance.now() - started) / 1000);
}

/** Records that a call to `target` is being tried again (count each extra attempt once). */
export function recordRetry(target: string, path: string): void {
  clientRetries.inc({ target, ...methodLabels(path) });
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker and bulkhead

/** State of a target's circuit breaker. */
export type CircuitState = "closed" | "half_open" | "open";

const CIRCUIT_STATE_VALUES: Readonly<Record<CircuitState, number>> = { closed: 0, half_open: 1, open: 2 };

const circuitState = new Gauge({
  name: "rpc_client_circuit_state",
  help: "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.",
  labelNames: ["target"] as const,
  registers: [registry],
});

const circuitOpened = new Counter({
  name: "rpc_client_circuit_opened_total",
  help: "Times a target's circuit breaker went into the open state.",
  labelNames: ["target"] as const,
  registers: [registry],
});

const bulkheadRejected = new Counter({
  name: "rpc_client_bulkhead_rejected_total",
  help: "Calls to a target refused at once because its bulkhead (concurrency limit and queue) was full.",
  labelNames: ["target"] as const,
  registers: [registry],
});

/** Last state set per target, so that only a change into "open" counts as an opening. */
const lastCircuitState = new Map<string, CircuitState>();

/**
 * Sets a target's breaker state. Moving into "open" from any other state (or as the first state
 * seen) adds one to `rpc_client_circuit_opened_total`; setting "open" again while open does not.
 */
export function setCircuitState(target: string, state: CircuitState): void {
  const value = CIRCUIT_STATE_VALUES[state];
  if (value === undefined) throw new TypeError(`setCircuitState: unknown state ${JSON.stringify(state)}`);
  const previous = lastCircuitState.get(target);
  lastCircuitState.set(target, state);
  circuitState.set({ target }, value);
  if (state === "open" && previous !== "open") circuitOpened.inc({ target });
  else circuitOpened.inc({ target }, 0); // the series exists from the first state on, so rate() sees its start
}

/** Records a call to `target` that its bulkhead refused. */
export function recordBulkheadRejection(target: string): void {
  bulkheadRejected.inc({ target });
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

const reconcileRepairs = new Counter({
  name: "reconcile_repairs_total",
  help: "Records found disagreeing with another service's data and repaired by a reconciliation sweep, by kind of repair.",
  labelNames: ["repair"] as const,
  registers: [registry],
});

/** Records one repair made by a reconciliation sweep (`repair` names what was put right). */
export function recordReconcileRepair(repair: string): void {
  reconcileRepairs.inc({ repair });
}

// ---------------------------------------------------------------------------------------------
// NATS

const published = new Counter({
  name: "nats_published_total",
  help: "Messages published to NATS by this process, by the first token of the subject.",
  labelNames: ["subject_root"] as const,
  registers: [registry],
});

/** Records one publish on `subject` (only its first token becomes a label). */
export function recordPublish(subject: string): void {
  published.inc({ subject_root: subjectRootLabel(subject) });
}

interface WatchedConsumer {
  readonly jsm: JetStreamManager;
  readonly stream: string;
  readonly consumer: string;
  readonly timeoutMs: number;
}

/** Consumers reported at each scrape, keyed by stream and consumer name. */
const watched = new Map<string, WatchedConsumer>();

const consumerKey = (stream: string, consumer: string): string => `${stream}\u0000${consumer}`;

/** The refresh the current scrape waits for; the three gauges' collect() calls share one. */
let refreshing: Promise<void> | undefined;

function refreshConsumersOnce(): Promise<void> {
  refreshing ??= refreshConsumers().finally(() => {
    refreshing = undefined;
  });
  return refreshing;
}

const consumerPending = new Gauge({
  name: "nats_consumer_pending_messages",
  help: "Messages in the stream that the JetStream consumer has not delivered yet (its backlog).",
  labelNames: ["stream", "consumer"] as const,
  registers: [registry],
  collect: refreshConsumersOnce,
});

const consumerRedelivered = new Gauge({
  name: "nats_consumer_redelivered_messages",
  help: "Messages of the JetStream consumer delivered more than once and not yet acknowledged.",
  labelNames: ["stream", "consumer"] as const,
  registers: [registry],
  collect: refreshConsumersOnce,
});

const consumerAckPending = new Gauge({
  name: "nats_consumer_ack_pending",
  help: "Messages delivered by the JetStream consumer and waiting for an acknowledgement.",
  labelNames: ["stream", "consumer"] as const,
  registers: [registry],
  collect: refreshConsumersOnce,
});

const consumerInfoErrors = new Counter({
  name: "nats_consumer_info_errors_total",
  help: "Scrapes at which a watched JetStream consumer's info could not be read (its gauges were left out).",
  labelNames: ["stream", "consumer"] as const,
  registers: [registry],
  collect: refreshConsumersOnce, // counted during the same scrape's refresh
});

const CONSUMER_GAUGES = [consumerPending, consumerRedelivered, consumerAckPending] as const;

async function refreshConsumers(): Promise<void> {
  await Promise.all([...watched.values()].map(refreshConsumer));
}

async function refreshConsumer(entry: WatchedConsumer): Promise<void> {
  const labels = { stream: entry.stream, consumer: entry.consumer };
  try {
    const info = await withTimeout(entry.jsm.consumers.info(entry.stream, entry.consumer), entry.timeoutMs);
    if (watched.get(consumerKey(entry.stream, entry.consumer)) !== entry) return; // unwatched meanwhile
    consumerPending.set(labels, info.num_pending);
    consumerRedelivered.set(labels, info.num_redelivered);
    consumerAckPending.set(labels, info.num_ack_pending);
  } catch {
    // A stale number is worse than none: the series disappear until the info can be read again.
    for (const gauge of CONSUMER_GAUGES) gauge.remove(labels);
    if (watched.get(consumerKey(entry.stream, entry.consumer)) === entry) consumerInfoErrors.inc(labels);
  }
}

export interface WatchConsumerOptions {
  /** How long a scrape waits for this consumer's info. Default 2000 ms. */
  timeoutMs?: number;
}

/**
 * Reports a durable JetStream consumer's backlog in `nats_consumer_pending_messages`,
 * `nats_consumer_redelivered_messages` and `nats_consumer_ack_pending`. Nothing polls: each scrape
 * of the registry reads `jsm.consumers.info(stream, consumer)` for every watched consumer, in
 * parallel, each bounded by `timeoutMs`; when the info cannot be read (consumer gone, NATS down)
 * the consumer's gauges are left out of that scrape and `nats_consumer_info_errors_total` counts it.
 *
 * Watching the same stream and consumer again replaces the earlier watch. The returned function
 * stops watching and removes the consumer's gauges; it is safe to call more than once.
 */
export function watchConsumer(
  jsm: JetStreamManager,
  stream: string,
  consumer: string,
  options: WatchConsumerOptions = {},
): () => void {
  const key = consumerKey(stream, consumer);
  const entry: WatchedConsumer = {
    jsm,
    stream,
    consumer,
    timeoutMs: options.timeoutMs ?? DEFAULT_CONSUMER_INFO_TIMEOUT_MS,
  };
  watched.set(key, entry);
  consumerInfoErrors.inc({ stream, consumer }, 0);
  return () => {
    if (watched.get(key) !== entry) return;
    watched.delete(key);
    for (const gauge of CONSUMER_GAUGES) gauge.remove({ stream, consumer });
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP (gateway)

const httpRequests = new Counter({
  name: "http_server_requests_total",
  help: "HTTP requests answered by the gateway, by route kind, method and status code.",
  labelNames: ["route_kind", "method", "status"] as const,
  registers: [registry],
});

const httpDuration = new Histogram({
  name: "http_server_request_duration_seconds",
  help: "Time from an HTTP request's arrival to the end of its response (whole stream for streaming responses).",
  labelNames: ["route_kind", "method"] as const,
  buckets: [...DURATION_BUCKETS_SECONDS],
  registers: [registry],
});

/**
 * Records one HTTP request answered by the gateway: `kind` is where it was routed, `method` the
 * HTTP method, `status` the HTTP status code sent.
 */
export function recordHttpRequest(kind: HttpRouteKind, method: string, status: number, seconds: number): void {
  const route_kind = routeKindLabel(kind);
  const httpMethod = httpMethodLabel(method);
  httpRequests.inc({ route_kind, method: httpMethod, status: httpStatusLabel(status) });
  httpDuration.observe({ route_kind, method: httpMethod }, nonNegative(seconds));
}

// ---------------------------------------------------------------------------------------------
// Tests

/**
 * Zeroes every platform metric, forgets circuit breaker states and stops watching every consumer.
 * The registry, the service label and the process metrics stay. The suite's fast tier runs its
 * files one after another in shared worker processes, and test/harness/fresh-file-state.ts calls
 * this before each file; within a file it separates tests.
 */
export function resetMetricsForTests(): void {
  watched.clear();
  lastCircuitState.clear();
  for (const metric of [
    serverHandled,
    serverHandling,
    clientHandled,
    clientHandling,
    clientRetries,
    circuitState,
    circuitOpened,
    bulkheadRejected,
    published,
    consumerPending,
    consumerRedelivered,
    consumerAckPending,
    consumerInfoErrors,
    httpRequests,
    httpDuration,
  ]) {
    metric.reset();
  }
}

// ---------------------------------------------------------------------------------------------

function nonNegative(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
}

function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
