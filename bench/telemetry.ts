/**
 * Telemetry benchmark (`make bench`): how fast the Delivery service turns drone location events
 * into delivery stages, next to the raw JetStream consume rate of the same messages in the same
 * run, and the latency from a drone's drop-off event to the delivery's Completed status event with
 * 1,000 drones reporting at 1 Hz.
 *
 * Everything runs on loopback: a private nats-server, the Delivery service as its own process
 * (with mutual TLS, as the platform runs it: certificates in a temp folder, deliveries scheduled
 * as the Scheduler over the communication layer), and this process publishing the drones' events.
 * Bounded in count and time; stops what it started (the process by its group, also when this one
 * fails or dies) and removes the temp folder.
 *
 *   BENCH_DRONES=1000  drones (and deliveries)       BENCH_TICKS=10   events per drone in phase 1
 *   BENCH_LIVE_S=12    seconds of live 1 Hz traffic  BENCH_BACKLOG_MAX_S=30  longest wait for the backlog
 *   BENCH_VERBOSE=1    show the service's warnings
 *   BENCH_CPU_PROF_DIR=<dir>  the Delivery process writes a CPU profile there when it stops
 *
 * Besides the rates it prints the CPU time the Delivery process and nats-server spent per 1,000
 * events of the backlog (from /proc), which a busy machine changes much less than the rates.
 * Run by `bench/run.ts`, it records "telemetry.throughput" (service / raw consume, goal >= 0.5x)
 * and "telemetry.completed" (drop-off to Completed p99, goal < 100 ms) with bench/results.ts.
 *
 * Drop-off to Completed is timed from the moment the drone's drop-off event is handed to its
 * JetStream publish (the drone drops off then) to the moment a plain subscriber of
 * `delivery.*.status` receives the Completed event; the table also shows it timed from the start
 * of the second's whole burst of 1,000 publishes (the figure quoted before).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema } from "../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneLocationEventSchema } from "../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { FlightStage } from "../gen/dronedelivery/drone/v1/drone_pb.js";
import { createCommsLayer } from "../lib/comms/index.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";
import { commandPidOf, startSupervisedChild, type SupervisedChild } from "../lib/devtools/supervised-child.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { decodeMessage, publishMessage } from "../lib/nats/messages.js";
import { ensureStreams, STREAMS, subjects } from "../lib/nats/streams.js";
import { waitForHealth } from "../lib/service/health-probe.js";
import { hermeticEnv } from "../test/harness/hermetic.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { cpuMsOf } from "./proc-stats.js";
import { freePort, percentile, printTable } from "./report.js";
import { recordFigures } from "./results.js";

const DRONES = Number(process.env["BENCH_DRONES"] ?? 1000);
const TICKS = Number(process.env["BENCH_TICKS"] ?? 10);
const LIVE_S = Number(process.env["BENCH_LIVE_S"] ?? 12);
/** The longest the service is given to work off the backlog of phase 1. */
const MAX_BACKLOG_MS = Number(process.env["BENCH_BACKLOG_MAX_S"] ?? 30) * 1000;
const CONSUMER = "delivery-telemetry";
const root = join(import.meta.dirname, "..");
const PICKUP = { latitude: 47.61, longitude: -122.33 };
const DROPOFF = { latitude: 47.63, longitude: -122.36 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function droneId(i: number): string {
  return `drone-${String(i + 1).padStart(4, "0")}`;
}

/** The stage a drone reports at `tick` of a flight whose drop-off is at `dropTick`. */
function stageAt(tick: number, dropTick: number): FlightStage {
  if (tick >= dropTick) return FlightStage.DROPPING_OFF;
  if (tick >= dropTick / 2 + 1) return FlightStage.HEADED_TO_DROPOFF;
  if (tick >= dropTick / 2) return FlightStage.PICKING_UP;
  return FlightStage.HEADED_TO_PICKUP;
}

function event(i: number, deliveryId: string, tick: number, dropTick: number) {
  const f = Math.min(1, tick / dropTick);
  return create(DroneLocationEventSchema, {
    droneId: droneId(i),
    deliveryId,
    position: {
      latitude: PICKUP.latitude + (DROPOFF.latitude - PICKUP.latitude) * f,
      longitude: PICKUP.longitude + (DROPOFF.longitude - PICKUP.longitude) * f,
      altitude: tick >= dropTick ? 0 : 60,
    },
    stage: stageAt(tick, dropTick),
    batteryPercent: 100 - tick,
    eventTime: timestampNow(),
    speedMps: 15,
    sequence: BigInt(tick + 1),
  });
}

const VERBOSE = process.env["BENCH_VERBOSE"] === "1";
/** Where the Delivery process writes its CPU profile (`node --cpu-prof`), when set. */
const PROFILE_DIR = process.env["BENCH_CPU_PROF_DIR"]?.trim() || undefined;

/** Mutual TLS as the platform runs it; the certificates live in a temp folder of this run. */
let tlsEnv: Record<string, string> = {};
/** The Delivery process running now, if any: stopped in the end whatever happens. */
let running: SupervisedChild | undefined;

function startDelivery(natsUrl: string, port: number): SupervisedChild {
  running = startSupervisedChild({
    name: "delivery",
    command: process.execPath,
    // BENCH_CPU_PROF_DIR=<dir>: the Delivery process writes a CPU profile there when it stops.
    args: nodeArgsFor("services/delivery/main.ts", PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`] : []),
    cwd: root,
    env: { ...process.env, ...hermeticEnv(), ...tlsEnv, NATS_URL: natsUrl, DELIVERY_PORT: String(port), LOG_LEVEL: "warn" },
    onLine: (line, stream) => {
      // BENCH_VERBOSE=1 also shows the service's log (warnings and errors only, LOG_LEVEL=warn).
      if (stream === "stderr" || VERBOSE) process.stderr.write(`[delivery] ${line}\n`);
    },
    onParentExit: "SIGKILL",
    orphanStopTimeoutMs: 5_000,
  });
  return running;
}


/** Messages nats-server received from and sent to clients so far (its /varz), for messages per event. */
async function serverMessages(monitorUrl: string | undefined): Promise<{ in: number; out: number } | undefined> {
  if (!monitorUrl) return undefined;
  try {
    const varz = (await (await fetch(`${monitorUrl}/varz`)).json()) as { in_msgs: number; out_msgs: number };
    return { in: varz.in_msgs, out: varz.out_msgs };
  } catch {
    return undefined;
  }
}

async function stopProcess(child: SupervisedChild): Promise<void> {
  await child.stop({ timeoutMs: 15_000 });
}

async function waitServing(address: string): Promise<void> {
  const health = await waitForHealth(address, { timeoutMs: 30_000, env: tlsEnv });
  if (!health.ok) throw new Error(`the Delivery service at ${address} is not SERVING: ${health.last}`);
}

async function createDeliveries(address: string, prefix: string): Promise<string[]> {
  const layer = await createCommsLayer({ identity: "scheduler", env: { ...tlsEnv, DELIVERY_ADDRESS: address } });
  const client = layer.client(DeliveryService, "delivery", { defaultTimeoutMs: 10_000 });
  const ids = Array.from({ length: DRONES }, (_, i) => `${prefix}-${i}`);
  const deadline = timestampFromDate(new Date(Date.now() + 86_400_000));
  try {
    for (let start = 0; start < ids.length; start += 50) {
      await Promise.all(
        ids.slice(start, start + 50).map((deliveryId, k) =>
          client.scheduleDelivery({
            deliveryId,
            ownerId: "acct-bench",
            pickup: PICKUP,
            dropoff: DROPOFF,
            deadline,
            confirmationRequired: ConfirmationType.NONE,
            packages: [{ packageId: `pkg-${deliveryId}`, size: PackageSize.SMALL, weightKg: 1 }],
            carrier: { case: "droneId", value: droneId(start + k) },
          }),
        ),
      );
    }
  } finally {
    layer.close();
  }
  return ids;
}

/** Publishes a batch concurrently, awaiting every JetStream ack; `sending` sees each event as its publish starts. */
async function publishAll(js: JetStreamClient, batch: ReturnType<typeof event>[], sending?: (e: ReturnType<typeof event>) => void): Promise<void> {
  for (let start = 0; start < batch.length; start += 500) {
    await Promise.all(
      batch.slice(start, start + 500).map((e) => {
        sending?.(e);
        return publishMessage(js, subjects.droneLocation(e.droneId), DroneLocationEventSchema, e);
      }),
    );
  }
}

async function consumerBacklog(jsm: JetStreamManager): Promise<{ pending: number; ackPending: number; delivered: number }> {
  const info = await jsm.consumers.info(STREAMS.DRONE_TELEMETRY.name, CONSUMER);
  return { pending: info.num_pending, ackPending: info.num_ack_pending, delivered: info.delivered.stream_seq };
}

/** Phase 1: the same stored messages, read raw and processed by the Delivery service, which is left running. */
async function throughput(nc: NatsConnection, natsUrl: string, port: number, natsPid: number | undefined, monitorUrl: string | undefined) {
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  let delivery = startDelivery(natsUrl, port);
  const address = `127.0.0.1:${port}`;
  await waitServing(address);
  const ids = await createDeliveries(address, "dlv-tp");
  await stopProcess(delivery); // its durable consumer stays and collects what is published next

  const info = await jsm.streams.info(STREAMS.DRONE_TELEMETRY.name);
  const firstSeq = info.state.last_seq + 1;
  const publishStart = performance.now();
  for (let tick = 0; tick < TICKS; tick++) {
    await publishAll(js, ids.map((id, i) => event(i, id, tick, TICKS - 1)));
  }
  const publishMs = performance.now() - publishStart;
  const total = DRONES * TICKS;

  // Raw: an ordered consumer reading and decoding the same messages.
  const raw = await js.consumers.get(STREAMS.DRONE_TELEMETRY.name, {
    filterSubjects: "drone.*.location",
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: firstSeq,
  });
  const rawStart = performance.now();
  const rawNatsCpuStart = cpuMsOf(natsPid);
  const messages = await raw.consume({ max_messages: 1000 });
  let read = 0;
  for await (const msg of messages) {
    decodeMessage(msg, DroneLocationEventSchema);
    if (++read >= total) break;
  }
  const rawMs = performance.now() - rawStart;
  const rawNatsCpuEnd = cpuMsOf(natsPid);
  const rawNatsCpu = rawNatsCpuStart === undefined || rawNatsCpuEnd === undefined ? undefined : ((rawNatsCpuEnd - rawNatsCpuStart) / total) * 1000;

  // The Delivery service: start it and time how long its consumer takes to work off the backlog.
  delivery = startDelivery(natsUrl, port);
  let started = 0;
  let cpuStart: { service?: number | undefined; nats?: number | undefined } = {};
  let msgsStart: { in: number; out: number } | undefined;
  let done = total;
  for (;;) {
    const backlog = await consumerBacklog(jsm).catch(() => undefined);
    if (backlog && !started && backlog.delivered >= firstSeq) {
      started = performance.now();
      cpuStart = { service: cpuMsOf(commandPidOf(delivery)), nats: cpuMsOf(natsPid) };
      msgsStart = await serverMessages(monitorUrl);
    }
    if (backlog && started && backlog.pending === 0 && backlog.ackPending === 0) break;
    // Bounded in time: on a machine too busy to work the backlog off, the rate is what was done.
    if (backlog && started && performance.now() - started > MAX_BACKLOG_MS) {
      done = total - backlog.pending - backlog.ackPending;
      break;
    }
    await sleep(started ? 10 : 20);
  }
  const serviceMs = performance.now() - started;
  const perThousand = (before: number | undefined, after: number | undefined) =>
    before === undefined || after === undefined ? undefined : ((after - before) / done) * 1000;
  const serviceCpu = perThousand(cpuStart.service, cpuMsOf(commandPidOf(delivery)));
  const natsCpu = perThousand(cpuStart.nats, cpuMsOf(natsPid));
  const msgsEnd = await serverMessages(monitorUrl);
  // What nats-server received and sent per event while the backlog was worked off (the
  // benchmark's own polling is a few requests a second).
  const messagesPerEvent = msgsStart && msgsEnd ? { in: (msgsEnd.in - msgsStart.in) / done, out: (msgsEnd.out - msgsStart.out) / done } : undefined;
  return {
    rawNatsCpu,
    messagesPerEvent,
    total,
    publishRate: total / (publishMs / 1000),
    rawRate: total / (rawMs / 1000),
    done,
    serviceRate: done / (serviceMs / 1000),
    serviceCpu,
    natsCpu,
  };
}

/** Phase 2: 1,000 drones at 1 Hz, live, on the service left running by phase 1; drop-off to Completed latency and consumer lag. */
async function live(nc: NatsConnection, delivery: SupervisedChild, port: number) {
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const address = `127.0.0.1:${port}`;
  await waitServing(address);
  const ids = await createDeliveries(address, "dlv-live");
  const dropTick = (i: number) => 4 + (i % Math.max(1, LIVE_S - 6));
  /** When the second's burst of publishes began, and when each drop-off event was handed to its publish. */
  const burstAt = new Map<string, number>();
  const droppedAt = new Map<string, number>();
  const latencies: number[] = [];
  const fromBurst: number[] = [];
  const sub = nc.subscribe("delivery.*.status", {
    callback: (_err, msg) => {
      const e = decodeMessage(msg, DeliveryStatusEventSchema);
      const t0 = droppedAt.get(e.deliveryId);
      if (e.stage === DeliveryStage.COMPLETED && t0 !== undefined) {
        const now = performance.now();
        latencies.push(now - t0);
        fromBurst.push(now - (burstAt.get(e.deliveryId) ?? t0));
        droppedAt.delete(e.deliveryId);
      }
    },
  });
  const lag: number[] = [];
  const seen = new Set<string>();
  const begin = performance.now();
  for (let tick = 0; tick < LIVE_S; tick++) {
    // After its drop-off a drone flies home without a delivery, still reporting every second.
    const batch = ids.map((id, i) => {
      if (tick <= dropTick(i)) return event(i, id, tick, dropTick(i));
      return create(DroneLocationEventSchema, { ...event(i, "", tick, dropTick(i)), stage: FlightStage.RETURNING });
    });
    const at = performance.now();
    ids.forEach((id, i) => {
      if (tick === dropTick(i)) burstAt.set(id, at);
    });
    await publishAll(js, batch, (e) => {
      if (e.stage === FlightStage.DROPPING_OFF && burstAt.has(e.deliveryId) && !droppedAt.has(e.deliveryId) && !seen.has(e.deliveryId)) {
        droppedAt.set(e.deliveryId, performance.now());
        seen.add(e.deliveryId);
      }
    });
    const backlog = await consumerBacklog(jsm);
    lag.push(backlog.pending + backlog.ackPending);
    const next = begin + (tick + 1) * 1000;
    await sleep(Math.max(0, next - performance.now()));
  }
  const settleUntil = performance.now() + 10_000;
  while (droppedAt.size > 0 && performance.now() < settleUntil) await sleep(50);
  sub.unsubscribe();
  await stopProcess(delivery);
  return { latencies, fromBurst, lag, missing: droppedAt.size };
}

const nats = await startNatsServer({ readyTimeoutMs: 10_000, monitoring: true });
const pki = await mkdtemp(join(tmpdir(), "bench-telemetry-pki-"));
tlsEnv = { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: pki };
let nc: NatsConnection | undefined;
try {
  nc = await connectNats({ url: nats.url, name: "bench" });
  await ensureStreams(await nc.jetstreamManager());
  const port = await freePort();
  console.log(`telemetry benchmark: ${DRONES} drones, ${TICKS} events each, then ${LIVE_S} s live at 1 Hz`);
  const tp = await throughput(nc, nats.url, port, nats.pid, nats.monitorUrl);
  if (!running) throw new Error("the Delivery service is not running after phase 1");
  const lv = await live(nc, running, port);
  const ratio = tp.serviceRate / tp.rawRate;
  const p50 = percentile(lv.latencies, 50);
  const p99 = percentile(lv.latencies, 99);
  const cpu = (ms: number | undefined) => (ms === undefined ? "-" : `${ms.toFixed(0)} ms`);
  printTable("Telemetry (DRONE_TELEMETRY -> Delivery service)", [
    ["events in the backlog", tp.done === tp.total ? String(tp.total) : `${tp.total} (${tp.done} worked off within ${MAX_BACKLOG_MS / 1000} s)`],
    ["publish rate (JetStream acks)", `${tp.publishRate.toFixed(0)} events/s`],
    ["raw JetStream consume + decode", `${tp.rawRate.toFixed(0)} events/s`],
    ["processed by the Delivery service", `${tp.serviceRate.toFixed(0)} events/s (${(ratio * 100).toFixed(0)}% of raw)`],
    ["CPU per 1,000 events: service / nats-server", `${cpu(tp.serviceCpu)} / ${cpu(tp.natsCpu)} (raw consume: nats-server ${cpu(tp.rawNatsCpu)})`],
    [
      "NATS messages per event, to / from nats-server",
      tp.messagesPerEvent ? `${tp.messagesPerEvent.in.toFixed(2)} / ${tp.messagesPerEvent.out.toFixed(2)}` : "-",
    ],
    ["live: drones at 1 Hz", String(DRONES)],
    ["drop-off -> Completed p50", `${p50.toFixed(1)} ms`],
    ["drop-off -> Completed p99", `${p99.toFixed(1)} ms`],
    ["the same from the second's burst start, p50 / p99", `${percentile(lv.fromBurst, 50).toFixed(1)} / ${percentile(lv.fromBurst, 99).toFixed(1)} ms`],
    ["Completed events seen", `${lv.latencies.length} (${lv.missing} missing)`],
    ["consumer backlog per second", lv.lag.join(" ")],
  ]);
  await recordFigures("telemetry", [
    {
      id: "telemetry.throughput",
      figure: `telemetry events processed by the Delivery service / raw ordered consume + decode of the same ${tp.total} stored events`,
      platform: `${Math.round(tp.serviceRate).toLocaleString("en-US")} events/s`,
      baseline: `${Math.round(tp.rawRate).toLocaleString("en-US")} events/s`,
      ratio,
      goal: ">= 0.5x",
      met: ratio >= 0.5,
      values: {
        events: tp.total,
        serviceRate: tp.serviceRate,
        rawRate: tp.rawRate,
        publishRate: tp.publishRate,
        ...(tp.serviceCpu === undefined ? {} : { serviceCpuMsPer1000: tp.serviceCpu }),
        ...(tp.natsCpu === undefined ? {} : { natsCpuMsPer1000: tp.natsCpu }),
        ...(tp.rawNatsCpu === undefined ? {} : { rawNatsCpuMsPer1000: tp.rawNatsCpu }),
        ...(tp.messagesPerEvent ? { natsMessagesInPerEvent: tp.messagesPerEvent.in, natsMessagesOutPerEvent: tp.messagesPerEvent.out } : {}),
      },
    },
    {
      id: "telemetry.completed",
      figure: `drop-off event -> Completed status event seen by a subscriber, ${DRONES} drones at 1 Hz`,
      platform: `p99 ${p99.toFixed(0)} ms, p50 ${p50.toFixed(0)} ms${lv.missing > 0 ? `, ${lv.missing} missing` : ""}`,
      baseline: "-",
      ratio: null,
      goal: "p99 < 100 ms",
      met: p99 < 100 && lv.missing === 0,
      values: {
        p50Ms: p50,
        p99Ms: p99,
        p99FromBurstMs: percentile(lv.fromBurst, 99),
        seen: lv.latencies.length,
        missing: lv.missing,
        maxBacklog: Math.max(0, ...lv.lag),
      },
    },
  ]);
} finally {
  if (running && !running.hasExited()) await running.stop({ timeoutMs: 5_000 });
  await drainQuietly(nc);
  await nats.stop();
  await rm(pki, { recursive: true, force: true });
}
