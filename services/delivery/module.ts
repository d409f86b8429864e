/** The Delivery service: delivery records, their stage, status and history. */
import { DEFAULT_PORTS } from "../../lib/service/ports.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { DeliveryLedger } from "./ledger.js";
import { deliveryRegistration } from "./server.js";
import { openDeliveryStore } from "./store.js";

export const deliveryModule: ServiceModule = {
  name: "delivery",
  defaultPort: DEFAULT_PORTS.delivery,
  services: [DeliveryService],
  async create({ js, log }) {
    const store = await openDeliveryStore(js);
    return { registrations: [deliveryRegistration(new DeliveryLedger(store, log))] };
  },
};
