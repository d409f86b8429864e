import { configDefaults, defineConfig } from "vitest/config";

const TESTS = ["test/**/*.test.ts", "lib/**/*.test.ts", "services/**/*.test.ts", "gateway/**/*.test.ts", "bench/**/*.test.ts"];

/**
 * The slow tier: fault tests that start whole platforms as processes (make run's script, clustered
 * nats-servers, services killed and started again) and wait for them to recover, and the gateway's
 * fuzz (thousands of requests through the whole platform). `make vitest`
 * (scripts/vitest-tiers.mjs) runs this tier beside the fast one, each with its own workers;
 * `vitest run <files>` runs whatever it is given.
 */
export const SLOW_TESTS = [
  "test/scale-out.test.ts",
  "test/run-cluster.test.ts",
  "test/run.test.ts",
  "test/nats-cluster.test.ts",
  "test/workflow-crash.test.ts",
  "gateway/recovery.test.ts",
  "gateway/fuzz.test.ts",
];

export default defineConfig({
  test: {
    // Tests start real servers (nats-server, gRPC on loopback), several files at once; give them
    // room on a 2-core machine that another run may be loading too.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "fast",
          include: TESTS,
          exclude: [...configDefaults.exclude, ...SLOW_TESTS],
          // A worker runs file after file in one process, loading the platform's modules (grpc-js,
          // nats, the generated contracts, the services) once instead of once per file: half the
          // suite's CPU time. Every file stops what it started in afterAll, and the process-wide
          // state of the platform (metrics, tracing) is reset before each file.
          isolate: false,
          setupFiles: ["test/harness/fresh-file-state.ts"],
        },
      },
      // Each file of the slow tier in a process of its own: they kill and start processes.
      { extends: true, test: { name: "slow", include: SLOW_TESTS } },
    ],
    // Transformed modules are kept under node_modules/.experimental-vitest-cache between runs.
    experimental: { fsModuleCache: true },
  },
});
