/**
 * The Scheduler: the delivery workflow. A durable pull consumer on DELIVERY_REQUESTS runs each
 * command as a saga over the domain services; it serves only health and reflection over gRPC.
 */
import { envInt } from "../../lib/service/config.js";
import { registeredService } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { ensureStreams, STREAMS } from "../../lib/nats/streams.js";
import { startWorkConsumer } from "../../lib/nats/work-consumer.js";
import { createDomainClients } from "./clients.js";
import { createCommandHandler } from "./command-handler.js";
import { openWorkflowStore } from "./workflow-store.js";

export const SCHEDULER_CONSUMER = "scheduler";

export const schedulerModule: ServiceModule = {
  ...registeredService("scheduler"),
  async create({ js, jsm, env, log, comms }) {
    await ensureStreams(jsm);
    const store = await openWorkflowStore(js);
    const clients = createDomainClients(comms, env);
    const maxDeliver = envInt(env, "SCHEDULER_MAX_DELIVER", 10, { min: 2, max: 1000 });
    const handle = createCommandHandler({ store, clients }, js, log, {
      maxDeliver,
      retryBaseMs: envInt(env, "SCHEDULER_RETRY_BASE_MS", 1_000, { min: 1 }),
      retryMaxMs: envInt(env, "SCHEDULER_RETRY_MAX_MS", 30_000, { min: 1 }),
    });
    const consumer = await startWorkConsumer(js, jsm, {
      stream: STREAMS.DELIVERY_REQUESTS.name,
      durable: SCHEDULER_CONSUMER,
      maxDeliver,
      ackWaitMs: envInt(env, "SCHEDULER_ACK_WAIT_MS", 30_000, { min: 500 }),
      concurrency: envInt(env, "SCHEDULER_CONCURRENCY", 32, { min: 1, max: 256 }),
      handle,
      log,
    });
    return {
      registrations: [],
      async close() {
        await consumer.stop();
        clients.close();
      },
    };
  },
};
