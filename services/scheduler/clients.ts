/** The domain services the workflow calls, each through the one client factory. */
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { ThirdPartyTransportService } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { createClient, type Client } from "../../lib/grpc/index.js";
import { envInt, type Env } from "../../lib/service/config.js";
import { serviceAddress } from "../../lib/service/ports.js";

export interface DomainClients {
  accounts: Client<typeof AccountService>;
  packages: Client<typeof PackageService>;
  drones: Client<typeof DroneSchedulerService>;
  thirdParty: Client<typeof ThirdPartyTransportService>;
  deliveries: Client<typeof DeliveryService>;
  close(): void;
}

/** Clients at `<NAME>_ADDRESS` (default 127.0.0.1:<default port>), each call bounded by CALL_TIMEOUT_MS. */
export function createDomainClients(env: Env): DomainClients {
  const defaultTimeoutMs = envInt(env, "CALL_TIMEOUT_MS", 5_000, { min: 10 });
  const clients = {
    accounts: createClient(AccountService, { address: serviceAddress(env, "account"), defaultTimeoutMs }),
    packages: createClient(PackageService, { address: serviceAddress(env, "package"), defaultTimeoutMs }),
    drones: createClient(DroneSchedulerService, { address: serviceAddress(env, "drone"), defaultTimeoutMs }),
    thirdParty: createClient(ThirdPartyTransportService, { address: serviceAddress(env, "thirdparty"), defaultTimeoutMs }),
    deliveries: createClient(DeliveryService, { address: serviceAddress(env, "delivery"), defaultTimeoutMs }),
  };
  return {
    ...clients,
    close() {
      for (const client of Object.values(clients)) client.close();
    },
  };
}
