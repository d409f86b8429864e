/** The Third-party service: bookings with outside carriers for parcels no drone can carry. */
import { DEFAULT_PORTS } from "../../lib/service/ports.js";
import { ThirdPartyTransportService } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { readThirdPartyConfig } from "./config.js";
import { thirdPartyRegistration } from "./server.js";
import { openPickupStore } from "./store.js";

export const thirdPartyModule: ServiceModule = {
  name: "thirdparty",
  defaultPort: DEFAULT_PORTS.thirdparty,
  services: [ThirdPartyTransportService],
  async create({ js, env, log }) {
    const config = readThirdPartyConfig(env);
    const store = await openPickupStore(js);
    log.info(config, "carrier booking settings");
    return { registrations: [thirdPartyRegistration(store, config)] };
  },
};
