import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "lib/**/*.test.ts", "services/**/*.test.ts", "gateway/**/*.test.ts", "bench/**/*.test.ts"],
    // Tests start real servers (nats-server, gRPC on loopback); give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
  },
});
