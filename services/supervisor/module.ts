/**
 * The Supervisor: compensation. A durable consumer on WORKFLOW_FAILURES undoes what each failed
 * workflow did, in reverse order, retrying until done; a periodic sweep hands stale workflows
 * over. It serves only health and reflection over gRPC.
 */
import { WorkflowFailedEventSchema } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { decodeMessage, MessageDecodeError } from "../../lib/nats/messages.js";
import { ensureStreams, STREAMS } from "../../lib/nats/streams.js";
import { ack, backoffMs, retry, startWorkConsumer } from "../../lib/nats/work-consumer.js";
import { envInt } from "../../lib/service/config.js";
import { registeredService } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { createDomainClients } from "../scheduler/clients.js";
import { openWorkflowStore } from "../scheduler/workflow-store.js";
import { openCompensationStore } from "./compensation-store.js";
import { compensate } from "./compensate.js";
import { startStaleSweep } from "./stale-sweep.js";

export const SUPERVISOR_CONSUMER = "supervisor";

export const supervisorModule: ServiceModule = {
  ...registeredService("supervisor"),
  async create({ js, jsm, env, log, comms }) {
    await ensureStreams(jsm);
    const compensations = await openCompensationStore(js);
    const workflows = await openWorkflowStore(js);
    const clients = createDomainClients(comms, env);
    const retryBaseMs = envInt(env, "SUPERVISOR_RETRY_BASE_MS", 1_000, { min: 1 });
    const retryMaxMs = envInt(env, "SUPERVISOR_RETRY_MAX_MS", 60_000, { min: 1 });
    const consumer = await startWorkConsumer(js, jsm, {
      stream: STREAMS.WORKFLOW_FAILURES.name,
      durable: SUPERVISOR_CONSUMER,
      maxDeliver: -1,
      ackWaitMs: envInt(env, "SUPERVISOR_ACK_WAIT_MS", 30_000, { min: 500 }),
      concurrency: envInt(env, "SUPERVISOR_CONCURRENCY", 4, { min: 1, max: 256 }),
      log,
      async handle(msg) {
        let event;
        try {
          event = decodeMessage(msg, WorkflowFailedEventSchema);
        } catch (error) {
          if (!(error instanceof MessageDecodeError)) throw error;
          log.error({ subject: msg.subject, err: error }, "undecodable workflow failure: dropped");
          return ack;
        }
        try {
          await compensate({ compensations, workflows, clients, log }, event);
          return ack;
        } catch (error) {
          const attempt = msg.info.redeliveryCount;
          log.warn({ deliveryId: event.deliveryId, attempt, err: error }, "compensation incomplete; will retry");
          return retry(backoffMs(attempt, retryBaseMs, retryMaxMs), (error as Error).message);
        }
      },
    });
    const sweep = startStaleSweep(
      workflows,
      js,
      {
        staleAfterMs: envInt(env, "SUPERVISOR_STALE_AFTER_MS", 15 * 60_000, { min: 1 }),
        intervalMs: envInt(env, "SUPERVISOR_SWEEP_INTERVAL_MS", 60_000, { min: 0 }),
      },
      log,
    );
    return {
      registrations: [],
      async close() {
        await sweep.stop();
        await consumer.stop();
        clients.close();
      },
    };
  },
};
