/**
 * The Third-party service: bookings with outside carriers for parcels no drone can carry, and the
 * carriers' progress with them (the carrier simulator).
 */
import { randomUUID } from "node:crypto";
import { ensureStreams, STREAMS } from "../../lib/nats/streams.js";
import { registeredService } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { CarrierSimulator } from "./carrier-simulator.js";
import { readThirdPartyConfig } from "./config.js";
import { thirdPartyRegistration } from "./server.js";
import { openPickupStore } from "./store.js";

export const thirdPartyModule: ServiceModule = {
  ...registeredService("thirdparty"),
  async create({ js, jsm, env, log }) {
    const config = readThirdPartyConfig(env);
    await ensureStreams(jsm, { streams: [STREAMS.CARRIER_STATUS] });
    const store = await openPickupStore(js);
    log.info(config, "carrier booking settings");
    const simulator = new CarrierSimulator(store, js, {
      instanceId: randomUUID(),
      leaseMs: config.simulatorLeaseMs,
      plan: config,
      now: () => Date.now(),
      log,
    });
    simulator.start();
    return {
      registrations: [thirdPartyRegistration(store, config)],
      async close() {
        await simulator.stop();
      },
    };
  },
};
