/**
 * The Drone service: the fleet, the assignment of drones to deliveries, the drones' flights and
 * their location events, and fleet reports.
 */
import { randomUUID } from "node:crypto";
import { registeredService } from "../../lib/service/registry.js";
import { kvRevisionProbe } from "../../lib/nats/kv.js";
import { ensureStreams, STREAMS } from "../../lib/nats/streams.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { flightTimingOf, readDroneConfig } from "./config.js";
import { cellKmFor, FleetIndex } from "./fleet-index.js";
import { startReclaimSweep } from "./reclaim-sweep.js";
import { seedFleet } from "./seed.js";
import { droneRegistration } from "./server.js";
import { FlightSimulator } from "./simulator.js";
import { DRONE_KEYS, DRONES_BUCKET, openDroneStore } from "./store.js";

export const droneModule: ServiceModule = {
  ...registeredService("drone"),
  async create({ nc, js, jsm, env, log }) {
    const config = readDroneConfig(env);
    const timing = flightTimingOf(config);
    await ensureStreams(jsm, { streams: [STREAMS.DRONE_TELEMETRY] });
    const store = await openDroneStore(js);
    const created = await seedFleet(store, config);
    if (created > 0) log.info({ created, fleetSize: config.fleetSize }, "seeded the fleet");
    const now = () => new Date();
    const index = new FleetIndex(store.kv, kvRevisionProbe(jsm, DRONES_BUCKET, DRONE_KEYS), {
      cellKm: cellKmFor(config.fleetSize, config.spreadKm),
      referenceLatitude: config.homeBase.latitude,
      now: () => Date.now(),
      log,
    });
    index.start();
    const sweep = startReclaimSweep(store, { ...config, timing, now, log, index });
    const simulator = new FlightSimulator(store, js, {
      instanceId: randomUUID(),
      leaseMs: config.simulatorLeaseMs,
      timing,
      now: () => Date.now(),
      log,
    });
    simulator.start();
    return {
      registrations: [droneRegistration(store, { claimLeaseMs: config.claimLeaseMs, timing, now, index, log, nc })],
      async close() {
        await simulator.stop();
        await sweep.stop();
        await index.stop();
      },
    };
  },
};
