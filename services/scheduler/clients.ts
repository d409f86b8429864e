/** The domain services the workflow calls, each through the one client factory. */
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { ThirdPartyTransportService } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import type { CommsLayer } from "../../lib/comms/layer.js";
import type { Client } from "../../lib/grpc/index.js";
import { envInt, type Env } from "../../lib/service/config.js";

export interface DomainClients {
  accounts: Client<typeof AccountService>;
  packages: Client<typeof PackageService>;
  drones: Client<typeof DroneSchedulerService>;
  thirdParty: Client<typeof ThirdPartyTransportService>;
  deliveries: Client<typeof DeliveryService>;
  close(): void;
}

/**
 * Clients through the caller's communication layer, at `<NAME>_ADDRESS` (default
 * 127.0.0.1:<default port>), each call bounded by CALL_TIMEOUT_MS when it sets no other limit.
 */
export function createDomainClients(comms: CommsLayer, env: Env): DomainClients {
  const defaultTimeoutMs = envInt(env, "CALL_TIMEOUT_MS", 5_000, { min: 10 });
  const clients = {
    accounts: comms.client(AccountService, "account", { defaultTimeoutMs }),
    packages: comms.client(PackageService, "package", { defaultTimeoutMs }),
    drones: comms.client(DroneSchedulerService, "drone", { defaultTimeoutMs }),
    thirdParty: comms.client(ThirdPartyTransportService, "thirdparty", { defaultTimeoutMs }),
    deliveries: comms.client(DeliveryService, "delivery", { defaultTimeoutMs }),
  };
  return {
    ...clients,
    close() {
      for (const client of Object.values(clients)) client.close();
    },
  };
}
