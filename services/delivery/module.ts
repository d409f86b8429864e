/**
 * The Delivery service: delivery records, their stage, status and history. Besides its gRPC
 * service it runs three pieces of background work: the telemetry consumer (drone positions to
 * delivery stages), the outbox sweep (status events whose publishing was interrupted), the
 * history subscriber (every status event kept per delivery) and the reconciliation sweep (open
 * deliveries compared with their drone's assignment).
 */
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { kvRevisionProbe } from "../../lib/nats/kv.js";
import { ensureStreams } from "../../lib/nats/streams.js";
import { registeredService } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { QueuedScheduleRequests } from "./accepted-requests.js";
import { startCarrierStatusConsumer } from "./carrier-status.js";
import { readConfig } from "./config.js";
import { DeliveryHistory, openHistoryStore, startHistorySubscriber } from "./history.js";
import { DeliveryLedger } from "./ledger.js";
import { StatusOutbox } from "./outbox.js";
import { DeliveryReconciler, noAssignment } from "./reconcile.js";
import { DeliveryFleetView } from "./fleet-view.js";
import { DELIVERY_FILTER } from "./keys.js";
import { deliveryRegistration } from "./server.js";
import { DELIVERIES_BUCKET, openDeliveryStore } from "./store.js";
import { startTelemetryConsumer, TelemetryHandler } from "./telemetry.js";
import { DeliveryWatcher } from "./watch.js";

export const deliveryModule: ServiceModule = {
  ...registeredService("delivery"),
  async create({ nc, js, jsm, env, log, comms }) {
    const config = readConfig(env);
    await ensureStreams(jsm);
    const store = await openDeliveryStore(js);
    const outbox = new StatusOutbox(store, js, jsm, log, { publishTimeoutMs: config.publishTimeoutMs, settleMs: config.outboxSettleMs });
    const ledger = new DeliveryLedger(store, outbox, log, undefined, new QueuedScheduleRequests(jsm));
    const drones = comms.client(DroneSchedulerService, "drone", { defaultTimeoutMs: 5_000 });
    const reconciler = new DeliveryReconciler(
      ledger,
      {
        assignmentOf: (deliveryId) =>
          drones.getAssignment({ deliveryId }).then(
            (answer) => answer.assignment,
            (error: unknown) => {
              if (noAssignment(error)) return undefined;
              throw error;
            },
          ),
      },
      { intervalMs: config.reconcileIntervalMs, quietMs: config.reconcileQuietMs },
      log,
    );
    const history = new DeliveryHistory(await openHistoryStore(js), log);
    const watcher = new DeliveryWatcher(ledger, nc, js, jsm, config, log);
    // Every owner's deliveries in memory, for the operators' listing and counts (fleet-view.ts).
    const view = new DeliveryFleetView(store.records.kv, kvRevisionProbe(jsm, DELIVERIES_BUCKET, DELIVERY_FILTER), log);

    const running: { stop(): Promise<void> }[] = [];
    const stopAll = async () => {
      for (const part of running.reverse()) await part.stop();
      await outbox.idle();
    };
    try {
      running.push(await startTelemetryConsumer(js, jsm, new TelemetryHandler(ledger, config, log), config, log));
      running.push(await startCarrierStatusConsumer(js, jsm, ledger, config.carrier, log));
      running.push(await startHistorySubscriber(js, jsm, history, config, log));
      running.push(outbox.startSweeping(config.outboxIntervalMs));
      running.push(reconciler.start());
      running.push({ stop: async () => drones.close() });
      view.start();
      running.push(view);
    } catch (error) {
      await stopAll();
      throw error;
    }
    return {
      registrations: [deliveryRegistration(ledger, history, watcher, view)],
      close: stopAll,
    };
  },
};
