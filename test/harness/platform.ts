/**
 * Starts the platform's services in-process against a test's private nats-server, each on a free
 * loopback port, with the callers pointed at the callees (`<NAME>_ADDRESS`). Services can be
 * stopped and started again on the same port to simulate outages and restarts.
 */
import type { Env } from "../../lib/service/config.js";
import { envPrefix } from "../../lib/service/config.js";
import type { RunningService, ServiceModule } from "../../lib/service/service-host.js";
import type { ServiceName } from "../../lib/service/ports.js";
import { PLATFORM_REGISTRY, serviceEntries } from "../../lib/service/registry.js";
import { accountModule } from "../../services/account/module.js";
import { deliveryModule } from "../../services/delivery/module.js";
import { droneModule } from "../../services/drone/module.js";
import { ingestionModule } from "../../services/ingestion/module.js";
import { packageModule } from "../../services/package/module.js";
import { schedulerModule } from "../../services/scheduler/module.js";
import { supervisorModule } from "../../services/supervisor/module.js";
import { thirdPartyModule } from "../../services/thirdparty/module.js";
import { hermeticEnv } from "./hermetic.js";
import { startTestService } from "./services.js";

export const MODULES: Record<ServiceName, ServiceModule> = {
  account: accountModule,
  package: packageModule,
  drone: droneModule,
  thirdparty: thirdPartyModule,
  delivery: deliveryModule,
  ingestion: ingestionModule,
  scheduler: schedulerModule,
  supervisor: supervisorModule,
};

/** The registry's order: domain services first (the workflow services need their addresses). */
const START_ORDER = serviceEntries(PLATFORM_REGISTRY).map((entry) => entry.name as ServiceName);

export interface TestPlatform {
  readonly services: Map<ServiceName, RunningService>;
  /** The environment every service got, including each `<NAME>_ADDRESS`. */
  readonly env: Env;
  address(name: ServiceName): string;
  stopService(name: ServiceName): Promise<void>;
  startService(name: ServiceName): Promise<RunningService>;
  stop(): Promise<void>;
}

export async function startPlatform(
  natsUrl: string,
  options: { env?: Env; only?: readonly ServiceName[] } = {},
): Promise<TestPlatform> {
  const services = new Map<ServiceName, RunningService>();
  const ports = new Map<ServiceName, number>();
  // Mutual TLS is off unless the test turns it on (see services.ts); processes a test starts
  // beside the platform get the same setting through `env`, and no NATS credentials from the
  // repository's .run/ (hermetic.ts).
  const env: Record<string, string | undefined> = { INTERNAL_TLS: "off", ...hermeticEnv(), ...options.env };
  const names = START_ORDER.filter((n) => !options.only || options.only.includes(n));

  const start = async (name: ServiceName): Promise<RunningService> => {
    const service = await startTestService(MODULES[name], natsUrl, { env, port: ports.get(name) ?? 0 });
    services.set(name, service);
    ports.set(name, service.port);
    env[`${envPrefix(name)}ADDRESS`] = service.address;
    return service;
  };
  for (const name of names) await start(name);

  const stopService = async (name: ServiceName) => {
    await services.get(name)?.stop();
    services.delete(name);
  };
  return {
    services,
    env,
    address(name) {
      const found = services.get(name);
      if (!found) throw new Error(`${name} is not running`);
      return found.address;
    },
    stopService,
    startService: start,
    async stop() {
      for (const name of [...names].reverse()) await stopService(name);
    },
  };
}
