/** The Package service: parcels (size, weight, tag) and what each owner has registered. */
import { DEFAULT_PORTS } from "../../lib/service/ports.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { envInt } from "../../lib/service/config.js";
import { natsReplicasFromEnv } from "../../lib/nats/replicas.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { packageRegistration } from "./server.js";
import { openPackageStore } from "./store.js";

export const packageModule: ServiceModule = {
  name: "package",
  defaultPort: DEFAULT_PORTS.package,
  services: [PackageService],
  async create({ js, env, log }) {
    const replicas = envInt(env, "PACKAGE_KV_REPLICAS", natsReplicasFromEnv(env), { min: 1, max: 5 });
    const store = await openPackageStore(js, { replicas });
    log.debug({ replicas }, "package store open");
    return { registrations: [packageRegistration(store)] };
  },
};
