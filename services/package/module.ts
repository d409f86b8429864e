/** The Package service: parcels (size, weight, tag) and what each owner has registered. */
import { registeredService } from "../../lib/service/registry.js";
import { envInt } from "../../lib/service/config.js";
import { natsReplicasFromEnv } from "../../lib/nats/replicas.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { packageRegistration } from "./server.js";
import { openPackageStore } from "./store.js";

export const packageModule: ServiceModule = {
  ...registeredService("package"),
  async create({ js, env, log }) {
    const replicas = envInt(env, "PACKAGE_KV_REPLICAS", natsReplicasFromEnv(env), { min: 1, max: 5 });
    const store = await openPackageStore(js, { replicas });
    log.debug({ replicas }, "package store open");
    return { registrations: [packageRegistration(store)] };
  },
};
