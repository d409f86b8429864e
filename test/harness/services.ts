/**
 * Starts services in-process for tests, exactly as their main.ts runs them: a real gRPC server on
 * a free loopback port and a real NATS connection to the test's private nats-server.
 */
import pino from "pino";
import type { Env } from "../../lib/service/config.js";
import { startService, type RunningService, type ServiceModule } from "../../lib/service/service-host.js";
import { hermeticEnv } from "./hermetic.js";

export interface TestServiceOptions {
  /**
   * Extra environment (e.g. a fleet size); merged over an empty environment (with no NATS
   * credentials: see hermetic.ts, never the repository's .run/). Mutual TLS is off
   * (INTERNAL_TLS=off) unless this turns it on: service tests call the handlers directly; the
   * gateway's tests and lib/security's run the platform with it on.
   */
  env?: Env;
  /** gRPC port; default 0 (a free port). Pass the old port to restart "the same" service. */
  port?: number;
}

/** Starts `module` against `natsUrl` and waits until it is SERVING. */
export async function startTestService(module: ServiceModule, natsUrl: string, options: TestServiceOptions = {}): Promise<RunningService> {
  const service = await startService(module, {
    env: { SHUTDOWN_GRACE_MS: "2000", SHUTDOWN_DRAIN_DELAY_MS: "0", INTERNAL_TLS: "off", ...hermeticEnv(), ...options.env },
    natsUrl,
    port: options.port ?? 0,
    log: pino({ level: process.env["TEST_LOG_LEVEL"] ?? "silent" }),
  });
  await service.ready;
  return service;
}
