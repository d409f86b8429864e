/**
 * Balancing benchmark (`make bench`): the p99 of calls over two instances of one service, one of
 * them slow (an added delay on every call), balanced round robin and p2c_ewma in the same run,
 * beside the fast instance alone.
 *
 * The two instances are child processes of this script (the same file run with `--serve`), each a
 * gRPC server of grpc.health.v1.Health on a free loopback port; the slow one waits
 * BENCH_BALANCING_DELAY_MS before every answer. Three clients, each its own channel, call Check at
 * a fixed concurrency:
 *   fast alone:   the fast instance only (what the slow one's calls are compared with);
 *   round robin:  both instances, RPC_LB_POLICY=round_robin (under outlier detection, as the
 *                 communication layer builds it);
 *   p2c_ewma:     both instances, the default policy (under outlier detection).
 * The paths take turns in rounds, the order rotating from round to round, after a warm-up each.
 * Each instance counts the calls it answered; the table gives every path's share of calls on the
 * slow one. Loopback only, bounded by count and a time cap per path; stops both instances at the
 * end, on failure and on SIGINT/SIGTERM.
 *
 *   BENCH_BALANCING_REQUESTS=1000  calls per path       BENCH_BALANCING_CONCURRENCY=2  in flight
 *   BENCH_BALANCING_DELAY_MS=50    the slow one's delay BENCH_BALANCING_ROUNDS=3       rounds
 *   BENCH_BALANCING_WARMUP=200     warm-up calls/path   BENCH_BALANCING_MAX_S=15       cap per path
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { nodeArgsFor, REPO_ROOT } from "../lib/devtools/service-command.js";
import { addService, createClient, type Client } from "../lib/grpc/index.js";
import { balancingChannelOptions, readBalancingConfig } from "../lib/grpc/load-balancing.js";
import { emptyResult, reportErrors, run, type PathResult } from "./load.js";
import { percentile, printTable } from "./report.js";
import { formatNumber, recordFigures } from "./results.js";

const REQUESTS = Number(process.env["BENCH_BALANCING_REQUESTS"] ?? 1_000);
const CONCURRENCY = Number(process.env["BENCH_BALANCING_CONCURRENCY"] ?? 2);
const DELAY_MS = Number(process.env["BENCH_BALANCING_DELAY_MS"] ?? 50);
const ROUNDS = Math.max(1, Number(process.env["BENCH_BALANCING_ROUNDS"] ?? 3));
const WARMUP = Number(process.env["BENCH_BALANCING_WARMUP"] ?? 200);
const MAX_S = Number(process.env["BENCH_BALANCING_MAX_S"] ?? 15);
const CALL_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// An instance (child process): `--serve <delayMs>`

interface FromInstance {
  readonly port?: number;
  readonly calls?: number;
}

async function serve(delayMs: number): Promise<void> {
  const server = new grpc.Server();
  let calls = 0;
  addService(server, Health, {
    check: async () => {
      calls++;
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      return { status: HealthCheckResponse_ServingStatus.SERVING };
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  process.on("message", (message: unknown) => {
    if (message === "calls") process.send?.({ calls } satisfies FromInstance);
  });
  // The parent gone (its IPC channel closed), the instance goes too.
  process.on("disconnect", () => {
    server.forceShutdown();
    process.exit(0);
  });
  process.on("SIGTERM", () => {
    server.forceShutdown();
    process.exit(0);
  });
  process.send?.({ port } satisfies FromInstance);
}

class InstanceProcess {
  private constructor(
    readonly name: string,
    readonly address: string,
    private readonly child: ChildProcess,
  ) {}

  static start(name: string, delayMs: number): Promise<InstanceProcess> {
    const child = spawn(process.execPath, [...nodeArgsFor("bench/balancing.ts"), "--serve", String(delayMs)], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${name} instance did not start within 30 s`));
      }, 30_000);
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`${name} instance exited (${code}) before it served`)));
      child.once("message", (message: FromInstance) => {
        clearTimeout(timer);
        resolve(new InstanceProcess(name, `127.0.0.1:${message.port}`, child));
      });
    });
  }

  /** Calls the instance has answered so far. */
  calls(): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} instance did not report its calls`)), 10_000);
      this.child.once("message", (message: FromInstance) => {
        clearTimeout(timer);
        resolve(message.calls ?? 0);
      });
      this.child.send("calls");
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    const killer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(killer);
  }
}

// ---------------------------------------------------------------------------------------------
// The benchmark

interface BenchPath {
  readonly name: string;
  readonly client: Client<typeof Health>;
  readonly result: PathResult;
  /** Calls the slow instance answered during this path's measured rounds. */
  slowCalls: number;
}

async function main(): Promise<number> {
  const instances: InstanceProcess[] = [];
  const clients: Client<typeof Health>[] = [];
  const stopAll = async () => {
    for (const client of clients) client.close();
    await Promise.all(instances.map((instance) => instance.stop()));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`balancing: ${signal}, stopping`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const fast = await InstanceProcess.start("fast", 0);
    instances.push(fast);
    const slow = await InstanceProcess.start("slow", DELAY_MS);
    instances.push(slow);
    const both = `${fast.address},${slow.address}`;
    /** A client as the communication layer configures it from this process's environment (RPC_LB_*, RPC_OUTLIER_*). */
    const clientOf = (address: string, policy: string) => {
      const client = createClient(Health, {
        address,
        channelOptions: balancingChannelOptions(readBalancingConfig({ ...process.env, RPC_LB_POLICY: policy })),
        observe: false,
        defaultTimeoutMs: CALL_TIMEOUT_MS,
      });
      clients.push(client);
      return client;
    };
    const paths: BenchPath[] = [
      { name: "fast alone", client: clientOf(fast.address, "p2c_ewma"), result: emptyResult(), slowCalls: 0 },
      { name: "round robin", client: clientOf(both, "round_robin"), result: emptyResult(), slowCalls: 0 },
      { name: "p2c_ewma", client: clientOf(both, "p2c_ewma"), result: emptyResult(), slowCalls: 0 },
    ];
    const callWith = (client: Client<typeof Health>) => async () => {
      const answer = await client.check({ service: "" });
      if (answer.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error(`answered status ${answer.status}`);
    };

    console.log(
      `balancing benchmark: two instances of grpc.health.v1.Health, one with ${DELAY_MS} ms added to every call; ` +
        `${REQUESTS} calls per path at concurrency ${CONCURRENCY} (after ${WARMUP} warm-up), ${ROUNDS} rotating rounds, cap ${MAX_S} s per path`,
    );
    for (const path of paths) {
      await path.client.waitForReady(Date.now() + 10_000);
      const warmup = emptyResult();
      await run(callWith(path.client), WARMUP, CONCURRENCY, 10_000, warmup);
      if (warmup.errors > 0) throw new Error(`${path.name}: ${warmup.errors} errors in the warm-up, first: ${warmup.firstError}`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const count = Math.floor(REQUESTS / ROUNDS) + (round < REQUESTS % ROUNDS ? 1 : 0);
      const order = paths.map((_, k) => paths[(k + round) % paths.length]!);
      for (const path of order) {
        const before = await slow.calls();
        await run(callWith(path.client), count, CONCURRENCY, MAX_S * 1000 - path.result.elapsedMs, path.result);
        path.slowCalls += (await slow.calls()) - before;
      }
    }

    const figures = paths.map((path) => ({
      ...path,
      capped: path.result.requests < REQUESTS,
      rate: path.result.latenciesMs.length / (path.result.elapsedMs / 1000),
      p50: percentile(path.result.latenciesMs, 50),
      p99: percentile(path.result.latenciesMs, 99),
      slowShare: path.slowCalls / Math.max(1, path.result.requests),
    }));
    const [alone, rr, p2c] = figures as [(typeof figures)[0], (typeof figures)[0], (typeof figures)[0]];
    const columns = (cells: string[]) => cells.map((c) => c.padStart(10)).join("");
    printTable(`Check over a fast and a slow (+${DELAY_MS} ms) instance, ${CONCURRENCY} in flight`, [
      ["path", columns(["requests", "req/s", "p50 ms", "p99 ms", "on slow", "errors"])],
      ...figures.map((f): [string, string] => [
        f.name,
        columns([
          `${f.result.requests}${f.capped ? "*" : ""}`,
          f.rate.toFixed(0),
          f.p50.toFixed(2),
          f.p99.toFixed(2),
          `${(f.slowShare * 100).toFixed(1)} %`,
          String(f.result.errors),
        ]),
      ]),
      ["p99 vs fast alone", `round robin ${(rr.p99 / alone.p99).toFixed(2)}x, p2c_ewma ${(p2c.p99 / alone.p99).toFixed(2)}x`],
    ]);
    if (figures.some((f) => f.capped)) console.log(`  * stopped by the ${MAX_S} s cap before ${REQUESTS} calls`);

    // Close to the fast instance's: within 2x of it or the slow one's delay away from it by less
    // than half; round robin's p99 lands on the slow instance's latency.
    const closeToFast = p2c.p99 <= Math.max(2 * alone.p99, alone.p99 + DELAY_MS / 2);
    await recordFigures("balancing", [
      {
        id: "balancing.slow_instance_p99",
        figure: `p99 over two instances, one +${DELAY_MS} ms slower, ${CONCURRENCY} in flight: p2c_ewma vs round robin (same run)`,
        platform: `p2c_ewma p99 ${p2c.p99.toFixed(1)} ms, ${(p2c.slowShare * 100).toFixed(1)} % on slow (fast alone p99 ${alone.p99.toFixed(1)} ms)`,
        baseline: `round robin p99 ${rr.p99.toFixed(1)} ms, ${(rr.slowShare * 100).toFixed(1)} % on slow`,
        ratio: rr.p99 / p2c.p99,
        goal: "p2c p99 <= max(2x, +delay/2) of fast alone's; round robin's is not",
        met: closeToFast && !(rr.p99 <= Math.max(2 * alone.p99, alone.p99 + DELAY_MS / 2)) && figures.every((f) => f.result.errors === 0),
        values: {
          delayMs: DELAY_MS,
          concurrency: CONCURRENCY,
          aloneP50Ms: alone.p50,
          aloneP99Ms: alone.p99,
          roundRobinP50Ms: rr.p50,
          roundRobinP99Ms: rr.p99,
          p2cP50Ms: p2c.p50,
          p2cP99Ms: p2c.p99,
          roundRobinSlowShare: rr.slowShare,
          p2cSlowShare: p2c.slowShare,
          aloneRate: alone.rate,
          roundRobinRate: rr.rate,
          p2cRate: p2c.rate,
          requestsPerPath: p2c.result.requests,
        },
      },
    ]);
    console.log(`\nround robin p99 / p2c_ewma p99: ${formatNumber(rr.p99 / p2c.p99)}x`);
    return reportErrors(figures);
  } finally {
    await stopAll();
  }
}

if (process.argv.includes("--serve")) {
  await serve(Number(process.argv[process.argv.indexOf("--serve") + 1] ?? 0));
} else {
  process.exitCode = await main();
}
