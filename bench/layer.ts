/**
 * Communication layer benchmark (`make bench`): the same delivery read
 * (`DeliveryService.GetDelivery`) with the interservice layer on and with it off, in one run,
 * against the same deliveries.
 *
 *   on:  a client of the `gateway` identity from createCommsLayer: mutual TLS (the server checks
 *        the caller against the authorization table), a client span per call (the server makes
 *        its own), client metrics, and the target's policy armed (deadline, bulkhead, circuit
 *        breaker, retries); tracing is on for the whole process.
 *   off: createClient with `observe: false` over plaintext: no span, no client metrics, no
 *        policy; tracing is off for the whole process.
 *
 * Two Delivery service instances run in this process on one private nats-server (so they share
 * the deliveries): one with INTERNAL_TLS=off, read by the off client, and one with
 * INTERNAL_TLS=on, read by the on client. Both clients carry the same deadline (the layer's
 * default read timeout), so the difference is not a deadline timer.
 *
 * Tracing is process-global, so the paths take turns in rounds: an off round with tracing shut
 * down, an on round with tracing started (initTracing with an exporter of this file that counts
 * the spans it is handed and keeps none, behind the SDK's BatchSpanProcessor, as production
 * batches its OTLP exporter), and the order of the two alternates from round to round. Each path
 * gets a warm-up first; each round is bounded by what is left of the path's time cap. Exits
 * non-zero only when a path had errors. Loopback only.
 *
 *   BENCH_LAYER_REQUESTS=10000  requests per path        BENCH_LAYER_CONCURRENCY=16  in flight
 *   BENCH_LAYER_WARMUP=500      warm-up requests         BENCH_LAYER_MAX_S=30        cap per path
 *   BENCH_LAYER_DELIVERIES=4    deliveries read in turn  BENCH_LAYER_ROUNDS=5        rounds
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { createCommsLayer, type CommsLayer } from "../lib/comms/index.js";
import { createClient, type Client } from "../lib/grpc/index.js";
import { metricsRegistry } from "../lib/observability/metrics.js";
import { isTracingOn } from "../lib/observability/trace-runtime.js";
import { initTracing, shutdownTracing, type ReadableSpan, type SpanExporter } from "../lib/observability/tracing.js";
import { DEFAULT_RESILIENCE_CONFIG } from "../lib/resilience/index.js";
import type { RunningService } from "../lib/service/service-host.js";
import { deliveryModule } from "../services/delivery/module.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { startTestService } from "../test/harness/services.js";
import { emptyResult, reportErrors, run, type PathResult } from "./load.js";
import { percentile, printTable } from "./report.js";
import { formatNumber, recordFigures } from "./results.js";

const REQUESTS = Number(process.env["BENCH_LAYER_REQUESTS"] ?? 10_000);
const CONCURRENCY = Number(process.env["BENCH_LAYER_CONCURRENCY"] ?? 16);
const WARMUP = Number(process.env["BENCH_LAYER_WARMUP"] ?? 500);
const MAX_S = Number(process.env["BENCH_LAYER_MAX_S"] ?? 30);
/** Cap of each path's warm-up. */
const WARMUP_MAX_MS = 10_000;
const DELIVERIES = Math.max(1, Number(process.env["BENCH_LAYER_DELIVERIES"] ?? 4));
const ROUNDS = Math.max(1, Number(process.env["BENCH_LAYER_ROUNDS"] ?? 5));
/** The deadline both clients give each read: what the layer's policy gives a read by default. */
const READ_TIMEOUT_MS = DEFAULT_RESILIENCE_CONFIG.readTimeoutMs;
const HOUR_MS = 3_600_000;

/**
 * The export end of the span pipeline without a destination: counts the spans each batch holds
 * and keeps none. What an OTLP exporter adds on top (serialising, sending) depends on where the
 * spans go; everything before it (making, ending, queueing and batching spans) is measured.
 */
class CountingSpanExporter implements SpanExporter {
  spans = 0;

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.spans += spans.length;
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The sum of a metric's samples whose labels include every one of `labels`. */
async function metricTotal(name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const metric = metricsRegistry().getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values
    .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

/** A valid schedule request for a fresh delivery carried by a drone. */
function scheduleRequest(deliveryId: string) {
  return {
    deliveryId,
    ownerId: "acct-demo",
    pickup: { latitude: 47.6062, longitude: -122.3321, altitude: 0 },
    dropoff: { latitude: 47.6205, longitude: -122.3493, altitude: 0 },
    deadline: timestampFromDate(new Date(Date.now() + 24 * HOUR_MS)),
    confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: `${deliveryId}-pkg`, size: PackageSize.SMALL, weightKg: 1.5 }],
    carrier: { case: "droneId" as const, value: "drone-1" },
  };
}

/** One path: how to read, and whether tracing is on while it runs. */
interface BenchPath {
  readonly name: string;
  readonly traced: boolean;
  readonly read: (i: number) => Promise<void>;
  readonly result: PathResult;
}

async function main(): Promise<number> {
  const nats = await startNatsServer({ readyTimeoutMs: 10_000 });
  const pki = await mkdtemp(path.join(tmpdir(), "bench-layer-pki-"));
  const tlsEnv = { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: pki };
  const services: RunningService[] = [];
  let gateway: CommsLayer | undefined;
  let bare: Client<typeof DeliveryService> | undefined;
  let spansExported = 0;
  try {
    const plainService = await startTestService(deliveryModule, nats.url, { env: { INTERNAL_TLS: "off" } });
    services.push(plainService);
    const tlsService = await startTestService(deliveryModule, nats.url, { env: tlsEnv });
    services.push(tlsService);
    const layerEnv = { ...tlsEnv, DELIVERY_ADDRESS: tlsService.address };

    // The deliveries, scheduled as the workflow schedules them: by the scheduler, over mutual TLS.
    const ids = Array.from({ length: DELIVERIES }, (_, i) => `bench-layer-${i}`);
    const scheduler = await createCommsLayer({ identity: "scheduler", env: layerEnv });
    try {
      const scheduling = scheduler.client(DeliveryService, "delivery");
      for (const id of ids) await scheduling.scheduleDelivery(scheduleRequest(id));
    } finally {
      scheduler.close();
    }

    gateway = await createCommsLayer({ identity: "gateway", env: layerEnv });
    const layered = gateway.client(DeliveryService, "delivery");
    bare = createClient(DeliveryService, { address: plainService.address, observe: false, defaultTimeoutMs: READ_TIMEOUT_MS });
    const plain = bare;

    const readWith = (client: Client<typeof DeliveryService>) => async (i: number) => {
      const id = ids[i % ids.length]!;
      const answer = await client.getDelivery({ deliveryId: id });
      if (answer.delivery?.deliveryId !== id) throw new Error(`answered delivery ${answer.delivery?.deliveryId}`);
    };
    const paths: BenchPath[] = [
      { name: "layer off", traced: false, read: readWith(plain), result: emptyResult() },
      { name: "layer on", traced: true, read: readWith(layered), result: emptyResult() },
    ];

    // The services ran initTracing at start (it found nothing to export): start from tracing off,
    // with no default service left, so that the on rounds' spans belong to the gateway.
    await shutdownTracing();
    /** Runs `work` with tracing as `benchPath` wants it, shutting it down (flushing) afterwards. */
    const withTracingOf = async (benchPath: BenchPath, work: () => Promise<void>) => {
      if (!benchPath.traced) {
        if (isTracingOn()) throw new Error("tracing is on in an off round");
        await work();
        return;
      }
      const exporter = new CountingSpanExporter();
      const status = initTracing("gateway", { exporter, env: {} });
      if (!status.enabled) throw new Error(`tracing did not start: ${status.warnings.join("; ")}`);
      try {
        await work();
      } finally {
        await shutdownTracing();
        spansExported += exporter.spans;
      }
    };

    console.log(
      `layer benchmark: ${REQUESTS} GetDelivery reads per path at concurrency ${CONCURRENCY} (after ${WARMUP} warm-up), ` +
        `${ids.length} deliveries, ${ROUNDS} alternating rounds, cap ${MAX_S} s per path`,
    );
    const warmups = paths.map(emptyResult);
    for (const [k, benchPath] of paths.entries()) {
      await withTracingOf(benchPath, () => run(benchPath.read, WARMUP, CONCURRENCY, WARMUP_MAX_MS, warmups[k]!));
    }
    for (const [k, benchPath] of paths.entries()) {
      const warmup = warmups[k]!;
      if (warmup.errors > 0) throw new Error(`${benchPath.name}: ${warmup.errors} errors in the warm-up, first: ${warmup.firstError}`);
    }
    const spansInWarmup = spansExported;
    const cpuUs = new Map<BenchPath, number>();
    const callsBefore = await metricTotal("rpc_client_handled_total", { target: "delivery" });
    // The measured requests in rounds, the paths taking turns (and turns at going first), so
    // both meet the same background work of the machine.
    for (let round = 0; round < ROUNDS; round++) {
      const count = Math.floor(REQUESTS / ROUNDS) + (round < REQUESTS % ROUNDS ? 1 : 0);
      for (const benchPath of round % 2 === 0 ? paths : [...paths].reverse()) {
        const { read, result } = benchPath;
        await withTracingOf(benchPath, async () => {
          // The process's CPU time (user + system) of the round: both sides of every call run here.
          const before = process.cpuUsage();
          await run(read, count, CONCURRENCY, MAX_S * 1000 - result.elapsedMs, result);
          const used = process.cpuUsage(before);
          cpuUs.set(benchPath, (cpuUs.get(benchPath) ?? 0) + used.user + used.system);
        });
      }
    }
    const spansMeasured = spansExported - spansInWarmup;
    const callsRecorded = (await metricTotal("rpc_client_handled_total", { target: "delivery" })) - callsBefore;
    const retries = await metricTotal("rpc_client_retries_total", { target: "delivery" });
    const rejections = await metricTotal("rpc_client_bulkhead_rejected_total", { target: "delivery" });
    const openings = await metricTotal("rpc_client_circuit_opened_total", { target: "delivery" });

    const figures = paths.map((benchPath) => {
      const { name, result } = benchPath;
      return {
        name,
        result,
        cpuUsPerRead: (cpuUs.get(benchPath) ?? 0) / Math.max(1, result.requests),
        capped: result.requests < REQUESTS,
        rate: result.latenciesMs.length / (result.elapsedMs / 1000),
        p50: percentile(result.latenciesMs, 50),
        p99: percentile(result.latenciesMs, 99),
      };
    });
    const columns = (cells: string[]) => cells.map((c, k) => (k === 0 ? c.padStart(9) : c.padStart(10))).join("");
    const [off, on] = figures as [(typeof figures)[0], (typeof figures)[0]];
    const perReadUs = (1 / on.rate - 1 / off.rate) * 1e6;
    printTable("DeliveryService.GetDelivery with the communication layer on vs off", [
      ["path", columns(["requests", "req/s", "p50 ms", "p99 ms", "errors"])],
      ...figures.map(({ name, result, capped, rate, p50, p99 }): [string, string] => [
        name,
        columns([`${result.requests}${capped ? "*" : ""}`, rate.toFixed(0), p50.toFixed(2), p99.toFixed(2), String(result.errors)]),
      ]),
      ["on / off", `req/s ${(on.rate / off.rate).toFixed(2)}x, p50 ${(on.p50 / off.p50).toFixed(2)}x, p99 ${(on.p99 / off.p99).toFixed(2)}x`],
      ["wall time per read", `${(1e6 / off.rate).toFixed(0)} us off, ${(1e6 / on.rate).toFixed(0)} us on (${perReadUs >= 0 ? "+" : ""}${perReadUs.toFixed(0)} us)`],
      ["CPU per read", `${off.cpuUsPerRead.toFixed(0)} us off, ${on.cpuUsPerRead.toFixed(0)} us on (process user + system, both sides of the call)`],
      ["on: spans per read", `${(spansMeasured / Math.max(1, on.result.requests)).toFixed(2)} (${spansMeasured} exported through the batch processor)`],
      ["on: client calls recorded", `${callsRecorded} of ${on.result.requests}`],
      ["on: policy", `retries ${retries}, bulkhead rejections ${rejections}, circuit openings ${openings}`],
      ["on does", "mutual TLS + caller check, client + server spans, client metrics, deadline/bulkhead/breaker/retries"],
    ]);
    if (figures.some((f) => f.capped)) console.log(`  * stopped by the ${MAX_S} s cap before ${REQUESTS} requests`);
    const ratio = on.rate / off.rate;
    await recordFigures("layer", [
      {
        id: "layer.on_off",
        figure: `communication layer on / off: DeliveryService.GetDelivery, ${CONCURRENCY} in flight (mTLS, caller check, spans, metrics, policy)`,
        platform: `${formatNumber(on.rate)} req/s, p99 ${on.p99.toFixed(1)} ms (layer on)`,
        baseline: `${formatNumber(off.rate)} req/s, p99 ${off.p99.toFixed(1)} ms (layer off)`,
        ratio,
        goal: ">= 0.85x",
        met: ratio >= 0.85 && on.result.errors === 0 && off.result.errors === 0,
        values: {
          onRate: on.rate,
          offRate: off.rate,
          onP50Ms: on.p50,
          onP99Ms: on.p99,
          offP50Ms: off.p50,
          offP99Ms: off.p99,
          onCpuUsPerRead: on.cpuUsPerRead,
          offCpuUsPerRead: off.cpuUsPerRead,
          onRequests: on.result.requests,
          offRequests: off.result.requests,
          onErrors: on.result.errors,
          offErrors: off.result.errors,
          spansPerRead: spansMeasured / Math.max(1, on.result.requests),
        },
      },
    ]);
    return reportErrors(figures);
  } finally {
    await shutdownTracing();
    bare?.close();
    gateway?.close();
    for (const service of services.reverse()) await service.stop();
    await nats.stop();
    await rm(pki, { recursive: true, force: true });
  }
}

process.exitCode = await main();
