/** The Ingestion service: accepts delivery requests and persists them as commands on JetStream. */
import { ensureStreams } from "../../lib/nats/streams.js";
import { envInt } from "../../lib/service/config.js";
import { registeredService } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { ingestionRegistration } from "./server.js";

export const ingestionModule: ServiceModule = {
  ...registeredService("ingestion"),
  async create({ js, jsm, env }) {
    await ensureStreams(jsm);
    const publishTimeoutMs = envInt(env, "INGESTION_PUBLISH_TIMEOUT_MS", 2_000, { min: 50 });
    return { registrations: [ingestionRegistration(js, { publishTimeoutMs })] };
  },
};
