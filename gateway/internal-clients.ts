/**
 * The internal services the gateway calls, through the gateway's communication layer (mutual TLS
 * as the `gateway` identity, balancing over instances, a canary version when
 * `<NAME>_CANARY_ADDRESS` names one (chosen per call by the `x-canary` flag call-options.ts passes
 * on, or by weight), deadlines, retries of idempotent methods, circuit breakers, tracing and
 * metrics).
 */
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneSchedulerService } from "../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { IngestionService } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import type { CommsLayer } from "../lib/comms/layer.js";
import type { Client } from "../lib/grpc/index.js";

export interface InternalClients {
  readonly ingestion: Client<typeof IngestionService>;
  readonly delivery: Client<typeof DeliveryService>;
  /** The fleet, for the operators' fleet API. */
  readonly drone: Client<typeof DroneSchedulerService>;
  close(): void;
}

export function createInternalClients(comms: CommsLayer, addresses: { ingestion: string; delivery: string; drone: string }): InternalClients {
  const ingestion = comms.client(IngestionService, "ingestion", { address: addresses.ingestion });
  const delivery = comms.client(DeliveryService, "delivery", { address: addresses.delivery });
  const drone = comms.client(DroneSchedulerService, "drone", { address: addresses.drone });
  return {
    ingestion,
    delivery,
    drone,
    close() {
      ingestion.close();
      delivery.close();
      drone.close();
    },
  };
}
