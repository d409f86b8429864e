/** The Ingestion service: accepts delivery requests and persists them as commands on JetStream. */
import { IngestionService } from "../../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { ensureStreams } from "../../lib/nats/streams.js";
import { envInt } from "../../lib/service/config.js";
import { DEFAULT_PORTS } from "../../lib/service/ports.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { ingestionRegistration } from "./server.js";

export const ingestionModule: ServiceModule = {
  name: "ingestion",
  defaultPort: DEFAULT_PORTS.ingestion,
  services: [IngestionService],
  async create({ js, jsm, env }) {
    await ensureStreams(jsm);
    const publishTimeoutMs = envInt(env, "INGESTION_PUBLISH_TIMEOUT_MS", 2_000, { min: 50 });
    return { registrations: [ingestionRegistration(js, { publishTimeoutMs })] };
  },
};
