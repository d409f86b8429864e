/**
 * Drone assignment benchmark (`make bench`): how the cost of `AssignDrone` changes with the size
 * of the fleet. For each fleet size (50, 500 and 5,000 drones by default) it starts a private
 * nats-server and the Drone service in-process (seeding the fleet), then:
 *
 *   1. sequential: one call at a time, `AssignDrone` timed, then `ReleaseAssignment` (not timed)
 *      frees the drone again, so the fleet stays mostly free: mean, p50 and p99 of the assign;
 *   2. concurrent: `BENCH_ASSIGN_CONCURRENCY` loops of assign + release: pairs per second.
 *
 * Pickups are spread over the fleet's area (a fixed pseudo-random sequence, the same per size);
 * every parcel weighs 1 kg, so every drone can carry it. Prints one table per size and the ratio
 * of the mean assign time at the largest size to the smallest. Exits non-zero only when a call
 * failed. Loopback only; every phase is bounded in count and time.
 *
 *   BENCH_ASSIGN_FLEETS=50,500,5000  fleet sizes      BENCH_ASSIGN_CALLS=400        timed calls per size
 *   BENCH_ASSIGN_WARMUP=40           warm-up calls    BENCH_ASSIGN_CONCURRENCY=16   loops in phase 2
 *   BENCH_ASSIGN_PAIRS=2000          pairs in phase 2 BENCH_ASSIGN_MAX_S=60         cap per phase
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

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw} must be a positive number`);
  return value;
};

const FLEETS = (process.env["BENCH_ASSIGN_FLEETS"] ?? "50,500,5000").split(",").map((s) => Number(s.trim()));
const CALLS = num("BENCH_ASSIGN_CALLS", 400);
const WARMUP = num("BENCH_ASSIGN_WARMUP", 40);
const CONCURRENCY = num("BENCH_ASSIGN_CONCURRENCY", 16);
const PAIRS = num("BENCH_ASSIGN_PAIRS", 2000);
const MAX_MS = num("BENCH_ASSIGN_MAX_S", 60) * 1000;

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

async function runSize(fleet: number): Promise<SizeResult> {
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
    try {
      const rand = seededRandom(fleet);
      for (let i = 0; i < WARMUP; i++) await assignAndRelease(client, rand);

      const timings: number[] = [];
      const deadline = performance.now() + MAX_MS;
      for (let i = 0; i < CALLS && performance.now() < deadline; i++) await assignAndRelease(client, rand, timings);

      let pairs = 0;
      let started = 0;
      const concurrentStart = performance.now();
      const concurrentDeadline = concurrentStart + MAX_MS;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (started < PAIRS && performance.now() < concurrentDeadline) {
            started++;
            await assignAndRelease(client, rand);
            pairs++;
          }
        }),
      );
      const pairsPerS = pairs / ((performance.now() - concurrentStart) / 1000);

      const mean = timings.reduce((a, b) => a + b, 0) / Math.max(1, timings.length);
      const result = { fleet, mean, p50: percentile(timings, 50), p99: percentile(timings, 99), pairsPerS };
      printTable(`AssignDrone, fleet of ${fleet.toLocaleString("en-US")} drones (started and seeded in ${(seedMs / 1000).toFixed(1)} s)`, [
        ["sequential calls timed", String(timings.length)],
        ["mean / p50 / p99", `${mean.toFixed(2)} / ${result.p50.toFixed(2)} / ${result.p99.toFixed(2)} ms`],
        [`assign + release, ${CONCURRENCY} in flight`, `${pairsPerS.toFixed(0)} pairs/s (${pairs} pairs)`],
      ]);
      return result;
    } finally {
      client.close();
      await service.stop();
    }
  } finally {
    await nats.stop();
  }
}

async function main(): Promise<void> {
  const results: SizeResult[] = [];
  for (const fleet of FLEETS) results.push(await runSize(fleet));
  const first = results[0];
  const last = results.at(-1);
  if (first && last && last !== first) {
    printTable("AssignDrone cost against fleet size", [
      [`mean, ${last.fleet} vs ${first.fleet} drones`, `${(last.mean / first.mean).toFixed(2)}x`],
      [`p99, ${last.fleet} vs ${first.fleet} drones`, `${(last.p99 / first.p99).toFixed(2)}x`],
      [`assign + release pairs/s, ${last.fleet} vs ${first.fleet}`, `${(last.pairsPerS / first.pairsPerS).toFixed(2)}x`],
    ]);
  }
  if (errors > 0) {
    console.error(`\n${errors} call(s) failed`);
    process.exitCode = 1;
  }
}

await main();
