/**
 * The internal services the gateway calls, each through the platform's single client factory.
 */
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { IngestionService } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { createClient, type Client } from "../lib/grpc/index.js";

export interface InternalClients {
  readonly ingestion: Client<typeof IngestionService>;
  readonly delivery: Client<typeof DeliveryService>;
  close(): void;
}

export function createInternalClients(addresses: { ingestion: string; delivery: string }): InternalClients {
  const ingestion = createClient(IngestionService, { address: addresses.ingestion });
  const delivery = createClient(DeliveryService, { address: addresses.delivery });
  return {
    ingestion,
    delivery,
    close() {
      ingestion.close();
      delivery.close();
    },
  };
}
