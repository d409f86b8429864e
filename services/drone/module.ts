/** The Drone service: the fleet, the assignment of drones to deliveries, and fleet reports. */
import { DEFAULT_PORTS } from "../../lib/service/ports.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { readDroneConfig } from "./config.js";
import { startReclaimSweep } from "./reclaim-sweep.js";
import { seedFleet } from "./seed.js";
import { droneRegistration } from "./server.js";
import { openDroneStore } from "./store.js";

export const droneModule: ServiceModule = {
  name: "drone",
  defaultPort: DEFAULT_PORTS.drone,
  services: [DroneSchedulerService],
  async create({ js, env, log }) {
    const config = readDroneConfig(env);
    const store = await openDroneStore(js);
    const created = await seedFleet(store, config);
    if (created > 0) log.info({ created, fleetSize: config.fleetSize }, "seeded the fleet");
    const now = () => new Date();
    const sweep = startReclaimSweep(store, { ...config, now, log });
    return {
      registrations: [droneRegistration(store, { claimLeaseMs: config.claimLeaseMs, now })],
      close: () => sweep.stop(),
    };
  },
};
