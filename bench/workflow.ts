/**
 * Workflow benchmark (`make bench`): schedule workflows completed per second with a fleet of
 * 5,000 drones, every workflow assigning a drone.
 *
 * A private nats-server, then the services the schedule workflow runs over, each as its own
 * process started the way `make run` starts it (`nodeArgsFor`): Account, Package, Drone (fleet of
 * `BENCH_WORKFLOW_FLEET` drones, seeded at start), Third-party, Delivery, and the Scheduler
 * (started last: see below). Internal hops are plaintext, as in the tests. The Supervisor (it
 * only sweeps for stale workflows and handles failures) is not started.
 *
 * The benchmark publishes `BENCH_WORKFLOW_REQUESTS` schedule commands to DELIVERY_REQUESTS the way
 * Ingestion does (the same command, subject, `Nats-Msg-Id` and message type header, each publish
 * acknowledged by JetStream) before the Scheduler starts, so the measured time is the workflows
 * alone and not the accept path. Then the Scheduler starts and works through them.
 *
 * A workflow is **completed** when the Scheduler has run its last step: the delivery opened, the
 * account checked, the parcel registered, a drone assigned, the delivery record Created with
 * that drone, the saga log record marked SUCCEEDED, and the command acknowledged. The rate is the
 * commands acknowledged by the Scheduler's consumer (`scheduler`, explicit ack) per second, from
 * the moment the Scheduler reports SERVING (its consumer running) to the poll that saw the last
 * acknowledgement (the consumer's state is polled every 100 ms). At the end every
 * saga log record is read: one that ended otherwise than SUCCEEDED with a drone (FAILED, or
 * SUCCEEDED without a drone) is an error and fails the run; one still RUNNING (or not begun) when
 * the time cap stopped the measurement is reported as unfinished.
 *
 * Every parcel weighs 1 kg (any drone carries it); pickups and drop-offs are spread over the
 * fleet's area. The account is the Account service's seeded `acct-demo`.
 *
 *   BENCH_WORKFLOW_REQUESTS=3000    workflows             BENCH_WORKFLOW_FLEET=5000     drones
 *   BENCH_WORKFLOW_CONCURRENCY=     SCHEDULER_CONCURRENCY of the Scheduler (default: its own)
 *   BENCH_WORKFLOW_MAX_S=30         cap on the measured phase (about 90 s in all with start-up)
 *   BENCH_WORKFLOW_TELEMETRY_HZ=1   location events per second of each drone in flight
 *   SCHEDULER_*                     passed on to the Scheduler (e.g. SCHEDULER_ACK_WAIT_MS)
 *   BENCH_WORKFLOW_CPU_PROF=DIR     run every service with `--cpu-prof` into DIR (profiles
 *                                   written when the services stop)
 */
import { readdirSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "nats";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { ScheduleDeliveryCommandSchema } from "../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { WorkflowProgressSchema, WorkflowState } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { REPO_ROOT, nodeArgsFor } from "../lib/devtools/service-command.js";
import { commandPidOf, startSupervisedChild, type SupervisedChild } from "../lib/devtools/supervised-child.js";
import { seededRandom } from "../lib/devtools/seeded-random.js";
import { publishMessage } from "../lib/nats/messages.js";
import { ensureStreams, STREAMS, subjects } from "../lib/nats/streams.js";
import { envPrefix } from "../lib/service/config.js";
import type { ServiceName } from "../lib/service/ports.js";
import { deliveryIdFor, scheduleMsgId } from "../services/ingestion/ids.js";
import { destination } from "../services/drone/geo.js";
import { SCHEDULER_CONSUMER } from "../services/scheduler/module.js";
import { WORKFLOWS_BUCKET } from "../services/scheduler/workflow-store.js";
import { hermeticEnv } from "../test/harness/hermetic.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { waitForHealth } from "../test/harness/grpc-probes.js";
import { largest, readProfile, selfTimes, type Profile } from "./cpu-profile.js";
import { cpuMsOf } from "./proc-stats.js";
import { freePort, printTable } from "./report.js";
import { recordFigures } from "./results.js";

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw} must be a positive number`);
  return value;
};

const REQUESTS = Math.floor(num("BENCH_WORKFLOW_REQUESTS", 3000));
const FLEET = Math.floor(num("BENCH_WORKFLOW_FLEET", 5000));
const CONCURRENCY = process.env["BENCH_WORKFLOW_CONCURRENCY"]?.trim() || undefined;
const MAX_MS = num("BENCH_WORKFLOW_MAX_S", 30) * 1000;
const TELEMETRY_HZ = num("BENCH_WORKFLOW_TELEMETRY_HZ", 1);
const CPU_PROF = process.env["BENCH_WORKFLOW_CPU_PROF"]?.trim() || undefined;
const GOAL = 1000;
const ACCOUNT = "acct-demo";
const HOME = { latitude: 47.6062, longitude: -122.3321 };
const SPREAD_KM = 2;

/** The services of the schedule workflow, domain services first (the Scheduler calls them). */
const SERVICES: ServiceName[] = ["account", "package", "drone", "thirdparty", "delivery"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A service as its own process; it is stopped with the run, and never outlives this one. */
function startChild(name: ServiceName, env: NodeJS.ProcessEnv): SupervisedChild {
  // One folder per service: a process running through tsx writes a second profile for its loader thread.
  const nodeOptions = CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${path.join(path.resolve(CPU_PROF), name)}`] : [];
  return startSupervisedChild({
    name,
    command: process.execPath,
    args: nodeArgsFor(`services/${name}/main.ts`, nodeOptions),
    cwd: REPO_ROOT,
    env,
    // Its log (LOG_LEVEL=warn) only where it reports a problem.
    onLine: (line, stream) => {
      if (stream === "stderr") process.stderr.write(`[${name}] ${line}\n`);
    },
    onParentExit: "SIGKILL",
  });
}

function pointNearHome(rand: () => number): { latitude: number; longitude: number; altitude: number } {
  const p = destination(HOME, rand() * 360, SPREAD_KM * Math.sqrt(rand()));
  return { latitude: p.latitude, longitude: p.longitude, altitude: 0 };
}

/** Publishes the schedule commands as Ingestion does, 64 publishes in flight. */
async function publishRequests(nc: NatsConnection, runId: string): Promise<string[]> {
  const js = nc.jetstream();
  const rand = seededRandom(FLEET);
  const deadline = timestampFromMs(Date.now() + 86_400_000);
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < REQUESTS) {
        const i = next++;
        const idempotencyKey = `bench-workflow-${runId}-${i}`;
        const deliveryId = deliveryIdFor(ACCOUNT, idempotencyKey);
        ids.push(deliveryId);
        const command = create(ScheduleDeliveryCommandSchema, {
          deliveryId,
          ownerId: ACCOUNT,
          pickup: pointNearHome(rand),
          dropoff: pointNearHome(rand),
          deadline,
          confirmationRequired: ConfirmationType.NONE,
          packages: [{ packageId: `pkg-${runId}-${i}`, size: PackageSize.SMALL, weightKg: 1 }],
          idempotencyKey,
          acceptTime: timestampNow(),
        });
        const ack = await publishMessage(js, subjects.scheduleRequest(deliveryId), ScheduleDeliveryCommandSchema, command, {
          msgId: scheduleMsgId(deliveryId),
        });
        if (ack.duplicate) throw new Error(`request ${deliveryId} was stored before`);
      }
    }),
  );
  return ids;
}

interface Measured {
  completed: number;
  /** The measured phase on the monotonic clock the CPU profiles use (microseconds). */
  windowUs: [number, number];
  elapsedMs: number;
  /** Completions per second in each whole second of the run. */
  perSecond: number[];
}

/** Polls the Scheduler consumer until every request is acknowledged (or the cap). */
async function measure(nc: NatsConnection): Promise<Measured> {
  const jsm = await nc.jetstreamManager();
  const stream = STREAMS.DELIVERY_REQUESTS.name;
  const acked = async () => {
    const info = await jsm.consumers.info(stream, SCHEDULER_CONSUMER);
    return REQUESTS - info.num_pending - info.num_ack_pending;
  };
  const start = performance.now();
  const windowStart = Number(process.hrtime.bigint() / 1000n);
  let last = start;
  let completed = 0;
  const perSecond: number[] = [];
  let secondStart = start;
  let atSecondStart = 0;
  while (performance.now() - start < MAX_MS) {
    await sleep(100);
    const now = performance.now();
    const done = await acked().catch(() => completed);
    if (done > completed) {
      last = now;
      completed = done;
    }
    if (now - secondStart >= 1000) {
      perSecond.push(completed - atSecondStart);
      atSecondStart = completed;
      secondStart = now;
    }
    if (completed >= REQUESTS) break;
  }
  // From the moment the Scheduler reports SERVING (its consumer started) to the last acknowledgement seen.
  const elapsedMs = Math.max(1, last - start);
  return { completed, elapsedMs, perSecond, windowUs: [windowStart, Number(process.hrtime.bigint() / 1000n)] };
}


type CpuSnapshot = Map<string, number | undefined>;

function cpuSnapshot(pids: ReadonlyMap<string, number | undefined>): CpuSnapshot {
  return new Map([...pids].map(([name, pid]) => [name, cpuMsOf(pid)]));
}

/** CPU per process over the measured phase: ms in all, % of a core, ms per workflow. */
function cpuRows(before: CpuSnapshot, after: CpuSnapshot, seconds: number, workflows: number): [string, string][] {
  let total = 0;
  const rows: [string, string][] = [];
  for (const [name, start] of before) {
    const end = after.get(name);
    if (start === undefined || end === undefined) continue;
    const used = end - start;
    total += used;
    rows.push([name, `${used.toFixed(0).padStart(6)} ms  ${((100 * used) / 1000 / seconds).toFixed(0).padStart(3)} % of a core  ${(used / Math.max(1, workflows)).toFixed(2).padStart(7)} ms/workflow`]);
  }
  rows.push(["all", `${total.toFixed(0).padStart(6)} ms  ${((100 * total) / 1000 / seconds).toFixed(0).padStart(3)} % of a core  ${(total / Math.max(1, workflows)).toFixed(2).padStart(7)} ms/workflow`]);
  return rows;
}

/** CPU ms per workflow of each process, for the report's values (`cpuMsPerWorkflow.<process>`). */
function cpuValues(before: CpuSnapshot, after: CpuSnapshot, workflows: number): Record<string, number> {
  const values: Record<string, number> = {};
  for (const [name, start] of before) {
    const end = after.get(name);
    if (start !== undefined && end !== undefined) values[`cpuMsPerWorkflow.${name}`] = (end - start) / Math.max(1, workflows);
  }
  return values;
}

/**
 * CPU of each service during the measured phase, from its profile (`--cpu-prof` samples carry
 * the monotonic clock of process.hrtime): busy ms, ms per workflow, and the top functions.
 */
function summariseProfiles(dir: string, windowUs: [number, number], workflows: number, top = 12): void {
  for (const name of [...SERVICES, "scheduler"]) {
    let profile: Profile;
    try {
      // The main thread's profile is the largest.
      const files = readdirSync(path.join(dir, name)).filter((f) => f.endsWith(".cpuprofile"));
      const main = files.map((f) => path.join(dir, name, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
      if (!main) continue;
      profile = readProfile(main);
    } catch {
      continue;
    }
    const { busyUs, byFunction } = selfTimes(profile, windowUs);
    const seconds = (windowUs[1] - windowUs[0]) / 1e6;
    printTable(`${name}: CPU in the measured phase`, [
      ["busy", `${(busyUs / 1000).toFixed(0)} ms of ${seconds.toFixed(1)} s (${((100 * busyUs) / 1e6 / seconds).toFixed(0)} % of a core)`],
      ["per workflow", `${(busyUs / 1000 / Math.max(1, workflows)).toFixed(2)} ms`],
      ...largest(byFunction, top).map(([k, us]): [string, string] => [`${((100 * us) / Math.max(1, busyUs)).toFixed(1)} %`, k]),
    ]);
  }
}

/** The saga log records of the run: how many SUCCEEDED with a drone, and the other states. */
async function verify(nc: NatsConnection, ids: readonly string[]): Promise<{ succeeded: number; unfinished: number; other: Map<string, number> }> {
  const kv = await nc.jetstream().views.kv(WORKFLOWS_BUCKET);
  let succeeded = 0;
  const other = new Map<string, number>();
  let unfinished = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const entry = await kv.get(id);
        const progress = entry?.value.length ? fromBinary(WorkflowProgressSchema, entry.value) : undefined;
        if (progress?.state === WorkflowState.SUCCEEDED && progress.droneId) succeeded++;
        else if (!progress || progress.state === WorkflowState.RUNNING) unfinished++;
        else {
          const state = progress ? `${WorkflowState[progress.state]}${progress.droneId ? "" : " without drone"}` : "no record";
          other.set(state, (other.get(state) ?? 0) + 1);
        }
      }
    }),
  );
  return { succeeded, unfinished, other };
}

async function main(): Promise<number> {
  const nats = await startNatsServer({ readyTimeoutMs: 10_000 });
  const children: SupervisedChild[] = [];
  const profDir = CPU_PROF ? path.resolve(CPU_PROF) : undefined;
  const scratch = await mkdtemp(path.join(tmpdir(), "bench-workflow-"));
  let nc: NatsConnection | undefined;
  let profiled: { windowUs: [number, number]; completed: number } | undefined;
  try {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env["PATH"],
      HOME: process.env["HOME"],
      ...hermeticEnv(),
      NATS_URL: nats.url,
      INTERNAL_TLS: "off",
      LOG_LEVEL: "warn",
      OTEL_SDK_DISABLED: "true",
      SHUTDOWN_GRACE_MS: "2000",
      SHUTDOWN_DRAIN_DELAY_MS: "0",
      DRONE_FLEET_SIZE: String(FLEET),
      DRONE_HOME_BASE: `${HOME.latitude},${HOME.longitude}`,
      DRONE_SPREAD_KM: String(SPREAD_KM),
      DRONE_MAX_PAYLOADS_KG: "2.5,5,10",
      DRONE_TELEMETRY_HZ: String(TELEMETRY_HZ),
      // The Scheduler's own settings pass through (e.g. SCHEDULER_ACK_WAIT_MS).
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("SCHEDULER_"))),
      ...(CONCURRENCY ? { SCHEDULER_CONCURRENCY: CONCURRENCY } : {}),
      TMPDIR: scratch,
    };
    for (const name of [...SERVICES, "scheduler" as const]) {
      const port = await freePort();
      env[`${envPrefix(name)}PORT`] = String(port);
      env[`${envPrefix(name)}ADDRESS`] = `127.0.0.1:${port}`;
    }
    const startedAt = performance.now();
    const domain = SERVICES.map((name) => startChild(name, env));
    children.push(...domain);
    await Promise.all(SERVICES.map((name) => waitForHealth(env[`${envPrefix(name)}ADDRESS`]!, "SERVING", 120_000)));
    console.log(`workflow benchmark: services up (fleet of ${FLEET.toLocaleString("en-US")} seeded) in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);

    nc = await connect({ servers: nats.url });
    await ensureStreams(await nc.jetstreamManager());
    const runId = Date.now().toString(36);
    const publishStart = performance.now();
    const ids = await publishRequests(nc, runId);
    console.log(`  ${REQUESTS} schedule commands stored in ${((performance.now() - publishStart) / 1000).toFixed(1)} s; starting the Scheduler`);

    const scheduler = startChild("scheduler", env);
    children.push(scheduler);
    await waitForHealth(env["SCHEDULER_ADDRESS"]!, "SERVING", 60_000);
    const pids = new Map<string, number | undefined>([...children.map((c): [string, number | undefined] => [c.name, commandPidOf(c)]), ["nats-server", nats.pid]]);
    const cpuBefore = cpuSnapshot(pids);
    const { completed, elapsedMs, perSecond, windowUs } = await measure(nc);
    const cpuAfter = cpuSnapshot(pids);
    profiled = { windowUs, completed };
    const rate = completed / (elapsedMs / 1000);
    const { succeeded, unfinished, other } = await verify(nc, ids);
    const errors = REQUESTS - succeeded - unfinished;

    printTable(
      `Schedule workflows, fleet of ${FLEET.toLocaleString("en-US")} drones, Scheduler concurrency ${CONCURRENCY ?? "default"}, telemetry ${TELEMETRY_HZ} Hz`,
      [
        ["workflows", String(REQUESTS)],
        ["completed (acknowledged)", `${completed} in ${(elapsedMs / 1000).toFixed(1)} s${completed < REQUESTS ? ` (cap ${MAX_MS / 1000} s)` : ""}`],
        ["rate", `${rate.toFixed(0)} workflows/s`],
        ["per second", perSecond.join(" ")],
        ["SUCCEEDED with a drone", String(succeeded)],
        ["unfinished at the cap", String(unfinished)],
        ["ended otherwise (errors)", other.size ? [...other].map(([k, v]) => `${k} ${v}`).join(", ") : "0"],
      ],
    );
    printTable("CPU used during the measured phase (user + system, every thread)", cpuRows(cpuBefore, cpuAfter, elapsedMs / 1000, completed));
    await recordFigures("workflow", [
      {
        id: "workflow.rate",
        figure: `schedule workflows completed (saga SUCCEEDED, drone assigned, delivery Created), fleet of ${FLEET.toLocaleString("en-US")} drones`,
        platform: `${rate.toFixed(0)} /s (${completed} workflows)`,
        baseline: "-",
        ratio: null,
        goal: `>= ${GOAL.toLocaleString("en-US")} /s`,
        met: errors === 0 && rate >= GOAL,
        values: { rate, completed, elapsedMs, succeeded, unfinished, errors, fleet: FLEET, ...cpuValues(cpuBefore, cpuAfter, completed) },
      },
    ]);
    if (errors > 0) {
      console.error(`\n${errors} workflow(s) ended without succeeding with a drone`);
      return 1;
    }
    return 0;
  } finally {
    await nc?.close().catch(() => {});
    // The Scheduler first, so that it does not call services that are already gone.
    for (const child of [...children].reverse()) await child.stop();
    await nats.stop();
    await rm(scratch, { recursive: true, force: true });
    if (profDir && profiled) summariseProfiles(profDir, profiled.windowUs, profiled.completed);
    if (profDir) console.log(`CPU profiles in ${profDir}`);
  }
}

process.exitCode = await main();
