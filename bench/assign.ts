/**
 * Drone assignment benchmark (`make bench`): how the cost of `AssignDrone` changes with the size
 * of the fleet. For each fleet size (50, 500 and 5,000 drones by default) it starts a private
 * nats-server and the Drone service in-process (seeding the fleet), all sizes up at once, then:
 *
 *   1. sequential: one call at a time, `AssignDrone` timed, then `ReleaseAssignment` (not timed)
 *      frees the drone again, so the fleet stays mostly free: mean, p50 and p99 of the assign;
 *   2. concurrent: `BENCH_ASSIGN_CONCURRENCY` loops of assign + release: pairs per second.
 *
 * In each phase the sizes take turns over `BENCH_ASSIGN_ROUNDS` rounds (the order rotating), so
 * that every size meets the same background load of the machine.
 *
 * Pickups are spread over the fleet's area (a fixed pseudo-random sequence, the same per size);
 * every parcel weighs 1 kg, so every drone can carry it. Prints one table per size and the ratio
 * of the mean assign time at the largest size to the smallest, and records the figure
 * `assign.flat`: the p50 assign time at the smallest fleet divided by the p50 at the largest (1x
 * is perfectly flat; goal >= 0.67x). Exits non-zero only when a call failed. Loopback only; every
 * phase is bounded in count and time (about 90 s in all by default, most of it seeding 5,000
 * drones).
 *
 *   BENCH_ASSIGN_FLEETS=50,500,5000  fleet sizes      BENCH_ASSIGN_CALLS=200        timed calls per size
 *   BENCH_ASSIGN_WARMUP=40           warm-up calls    BENCH_ASSIGN_CONCURRENCY=16   loops in phase 2
 *   BENCH_ASSIGN_PAIRS=600           pairs in phase 2 BENCH_ASSIGN_MAX_S=15         cap per phase and size
 *   BENCH_ASSIGN_ROUNDS=4            rounds in which the sizes take turns
 */
import { PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DroneSchedulerService } from "../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { createClient, type Client } from "../lib/grpc/index.js";
import { droneModule } from "../services/drone/module.js";
import { destination } from "../services/drone/geo.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { startTestService } from "../test/harness/services.js";
import { percentile, printTable } from "./report.js";
import { seededRandom } from "../lib/devtools/seeded-random.js";
import { recordFigures } from "./results.js";

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw} must be a positive number`);
  return value;
};

const FLEETS = (process.env["BENCH_ASSIGN_FLEETS"] ?? "50,500,5000").split(",").map((s) => Number(s.trim()));
const CALLS = num("BENCH_ASSIGN_CALLS", 200);
const WARMUP = num("BENCH_ASSIGN_WARMUP", 40);
const CONCURRENCY = num("BENCH_ASSIGN_CONCURRENCY", 16);
const PAIRS = num("BENCH_ASSIGN_PAIRS", 600);
const MAX_MS = num("BENCH_ASSIGN_MAX_S", 15) * 1000;
const ROUNDS = Math.floor(num("BENCH_ASSIGN_ROUNDS", 4));
/** The goal of `assign.flat`: p50 at the smallest fleet / p50 at the largest. */
const FLAT_GOAL = 0.67;

const HOME = { latitude: 47.6062, longitude: -122.3321 };
const SPREAD_KM = 2;

type Drones = Client<typeof DroneSchedulerService>;

function pointNearHome(rand: () => number): { latitude: number; longitude: number; altitude: number } {
  const p = destination(HOME, rand() * 360, SPREAD_KM * Math.sqrt(rand()));
  return { latitude: p.latitude, longitude: p.longitude, altitude: 0 };
}

let errors = 0;
let sequence = 0;

async function assignAndRelease(client: Drones, rand: () => number, timings?: number[]): Promise<void> {
  const deliveryId = `bench-${++sequence}`;
  const started = performance.now();
  try {
    await client.assignDrone({
      deliveryId,
      ownerId: "acct-bench",
      pickup: pointNearHome(rand),
      dropoff: pointNearHome(rand),
      packages: [{ packageId: `${deliveryId}-p1`, size: PackageSize.SMALL, weightKg: 1 }],
    });
    timings?.push(performance.now() - started);
    await client.releaseAssignment({ deliveryId, reason: "benchmark" });
  } catch (error) {
    errors++;
    if (errors <= 5) console.error(`call failed (${deliveryId}):`, (error as Error).message);
  }
}

interface SizeResult {
  fleet: number;
  mean: number;
  p50: number;
  p99: number;
  pairsPerS: number;
}

/** One fleet size: its own nats-server and Drone service, and what was measured on it. */
interface Fleet {
  readonly fleet: number;
  readonly seedMs: number;
  readonly client: Drones;
  readonly rand: () => number;
  readonly timings: number[];
  pairs: number;
  concurrentMs: number;
  stop(): Promise<void>;
}

async function startFleet(fleet: number): Promise<Fleet> {
  const nats = await startNatsServer({ readyTimeoutMs: 10_000 });
  try {
    const seedStart = performance.now();
    const service = await startTestService(droneModule, nats.url, {
      env: {
        DRONE_FLEET_SIZE: String(fleet),
        DRONE_HOME_BASE: `${HOME.latitude},${HOME.longitude}`,
        DRONE_SPREAD_KM: String(SPREAD_KM),
        DRONE_MAX_PAYLOADS_KG: "2.5,5,10",
        DRONE_RECLAIM_INTERVAL_MS: "0",
      },
    });
    const seedMs = performance.now() - seedStart;
    const client = createClient(DroneSchedulerService, { address: service.address });
    return {
      fleet,
      seedMs,
      client,
      rand: seededRandom(fleet),
      timings: [],
      pairs: 0,
      concurrentMs: 0,
      async stop() {
        client.close();
        await service.stop();
        await nats.stop();
      },
    };
  } catch (error) {
    await nats.stop();
    throw error;
  }
}

/** `count` sequential timed calls on `fleet`, stopping at `deadline`. */
async function sequential(fleet: Fleet, count: number, deadline: number): Promise<void> {
  for (let i = 0; i < count && performance.now() < deadline; i++) await assignAndRelease(fleet.client, fleet.rand, fleet.timings);
}

/** `count` assign + release pairs on `fleet`, CONCURRENCY in flight, stopping at `deadline`. */
async function concurrent(fleet: Fleet, count: number, deadline: number): Promise<void> {
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started < count && performance.now() < deadline) {
        started++;
        await assignAndRelease(fleet.client, fleet.rand);
        fleet.pairs++;
      }
    }),
  );
  fleet.concurrentMs += performance.now() - start;
}

/**
 * Every fleet size is up at once; the sizes take turns in ROUNDS rounds (each round in another
 * order), so that all of them meet the same background load of the machine.
 */
async function measureAll(fleets: readonly Fleet[]): Promise<SizeResult[]> {
  for (const fleet of fleets) for (let i = 0; i < WARMUP; i++) await assignAndRelease(fleet.client, fleet.rand);
  const order = (round: number) => fleets.map((_, k) => fleets[(k + round) % fleets.length]!);
  const sequentialDeadline = performance.now() + MAX_MS * fleets.length;
  for (let round = 0; round < ROUNDS; round++) {
    for (const fleet of order(round)) await sequential(fleet, Math.ceil(CALLS / ROUNDS), sequentialDeadline);
  }
  const concurrentDeadline = performance.now() + MAX_MS * fleets.length;
  for (let round = 0; round < ROUNDS; round++) {
    for (const fleet of order(round)) await concurrent(fleet, Math.ceil(PAIRS / ROUNDS), concurrentDeadline);
  }
  return fleets.map((fleet) => {
    const { timings } = fleet;
    const mean = timings.reduce((a, b) => a + b, 0) / Math.max(1, timings.length);
    const result = { fleet: fleet.fleet, mean, p50: percentile(timings, 50), p99: percentile(timings, 99), pairsPerS: fleet.pairs / (fleet.concurrentMs / 1000) };
    printTable(`AssignDrone, fleet of ${fleet.fleet.toLocaleString("en-US")} drones (started and seeded in ${(fleet.seedMs / 1000).toFixed(1)} s)`, [
      ["sequential calls timed", String(timings.length)],
      ["mean / p50 / p99", `${mean.toFixed(2)} / ${result.p50.toFixed(2)} / ${result.p99.toFixed(2)} ms`],
      [`assign + release, ${CONCURRENCY} in flight`, `${result.pairsPerS.toFixed(0)} pairs/s (${fleet.pairs} pairs)`],
    ]);
    return result;
  });
}

async function main(): Promise<void> {
  const fleets: Fleet[] = [];
  let results: SizeResult[];
  try {
    for (const size of FLEETS) fleets.push(await startFleet(size));
    results = await measureAll(fleets);
  } finally {
    for (const fleet of fleets) await fleet.stop();
  }
  const first = results[0];
  const last = results.at(-1);
  if (first && last && last !== first) {
    printTable("AssignDrone cost against fleet size", [
      [`mean, ${last.fleet} vs ${first.fleet} drones`, `${(last.mean / first.mean).toFixed(2)}x`],
      [`p99, ${last.fleet} vs ${first.fleet} drones`, `${(last.p99 / first.p99).toFixed(2)}x`],
      [`assign + release pairs/s, ${last.fleet} vs ${first.fleet}`, `${(last.pairsPerS / first.pairsPerS).toFixed(2)}x`],
    ]);
  }
  if (first && last && last !== first) {
    const ratio = first.p50 / last.p50;
    await recordFigures("assign", [
      {
        id: "assign.flat",
        figure: `AssignDrone p50, fleet of ${first.fleet.toLocaleString("en-US")} / fleet of ${last.fleet.toLocaleString("en-US")} drones`,
        platform: `${last.p50.toFixed(2)} ms at ${last.fleet.toLocaleString("en-US")} drones`,
        baseline: `${first.p50.toFixed(2)} ms at ${first.fleet.toLocaleString("en-US")} drones`,
        ratio,
        goal: `>= ${FLAT_GOAL}x (flat)`,
        met: errors === 0 && ratio >= FLAT_GOAL,
        values: {
          smallFleet: first.fleet,
          largeFleet: last.fleet,
          smallP50Ms: first.p50,
          largeP50Ms: last.p50,
          smallP99Ms: first.p99,
          largeP99Ms: last.p99,
          smallPairsPerS: first.pairsPerS,
          largePairsPerS: last.pairsPerS,
          errors,
        },
      },
    ]);
  }
  if (errors > 0) {
    console.error(`\n${errors} call(s) failed`);
    process.exitCode = 1;
  }
}

await main();
