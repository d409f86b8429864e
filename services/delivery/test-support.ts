/**
 * What the Delivery service's tests share: a private nats-server with the service, schedule
 * requests, drone location events published as the Drone service publishes them, and readers of
 * what the service stored and published. Used by the *.test.ts files only.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { connect, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import { vi } from "vitest";
import type { LocationSchema } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService, type ScheduleDeliveryRequestSchema } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneLocationEventSchema } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { createClient, type Client } from "../../lib/grpc/index.js";
import { decodeMessage, MESSAGE_ID_HEADER, publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import type { Env } from "../../lib/service/config.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { deliveryModule } from "./module.js";
import { HISTORY_INDEX_HEADER, STATUS_STREAM } from "./status-stream.js";
import { openDeliveryStore, type DeliveryStore } from "./store.js";
import { TELEMETRY_CONSUMER } from "./telemetry.js";

export const HOUR = 3_600_000;
export const PICKUP = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
export const DROPOFF = { latitude: 47.6205, longitude: -122.3493, altitude: 0 };

/** Polling for what the service does in the background; no assertion on how long it takes. */
export const EVENTUALLY = { timeout: 15_000, interval: 25 } as const;

export function inHours(hours: number) {
  return timestampFromDate(new Date(Date.now() + hours * HOUR));
}

type ScheduleInit = Exclude<MessageInitShape<typeof ScheduleDeliveryRequestSchema>, { $typeName: string }>;

export function scheduleRequest(deliveryId: string, droneId: string, overrides: Partial<ScheduleInit> = {}): ScheduleInit {
  return {
    deliveryId,
    ownerId: "acct-demo",
    pickup: PICKUP,
    dropoff: DROPOFF,
    deadline: inHours(24),
    confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: `${deliveryId}-pkg`, size: PackageSize.SMALL, weightKg: 1.5 }],
    carrier: { case: "droneId", value: droneId },
    ...overrides,
  };
}

/** A nats-server, the Delivery service on it, a client, and a connection of the test's own. */
export class DeliveryTestBed {
  service!: RunningService;
  client!: Client<typeof DeliveryService>;
  nc!: NatsConnection;
  js!: JetStreamClient;
  jsm!: JetStreamManager;
  store!: DeliveryStore;

  private constructor(
    readonly nats: TestNatsServer,
    readonly env: Env,
  ) {}

  static async start(env: Env = {}): Promise<DeliveryTestBed> {
    const bed = new DeliveryTestBed(await startNatsServer(), env);
    bed.nc = await connect({ servers: bed.nats.url });
    bed.js = bed.nc.jetstream();
    bed.jsm = await bed.nc.jetstreamManager();
    await bed.startService();
    bed.store = await openDeliveryStore(bed.js);
    return bed;
  }

  /** Starts the service (again, on the same port after a stop). */
  async startService(): Promise<void> {
    const port = this.service?.port;
    this.service = await startTestService(deliveryModule, this.nats.url, { env: this.env, ...(port ? { port } : {}) });
    this.client = createClient(DeliveryService, { address: this.service.address });
  }

  async stopService(): Promise<void> {
    this.client.close();
    await this.service.stop();
  }

  async stop(): Promise<void> {
    this.client?.close();
    await this.service?.stop();
    await this.nc?.close();
    await this.nats.stop();
  }

  async schedule(deliveryId: string, droneId: string, overrides: Partial<ScheduleInit> = {}): Promise<Delivery> {
    const { delivery } = await this.client.scheduleDelivery(scheduleRequest(deliveryId, droneId, overrides));
    if (!delivery) throw new Error("no delivery returned");
    return delivery;
  }

  /** When each drone's sequence 0 was measured: an event's time follows from its sequence, so a replay is identical. */
  private readonly flightStart = new Map<string, number>();

  /**
   * Publishes a drone location event as the Drone service does: one a second, so the event with
   * sequence n was measured n seconds after the drone's first. The same arguments publish the same
   * event (a replay).
   */
  async fly(droneId: string, deliveryId: string, stage: FlightStage, sequence: number, position: MessageInitShape<typeof LocationSchema> = PICKUP, speedMps = 12): Promise<void> {
    const start = this.flightStart.get(droneId) ?? Date.now();
    this.flightStart.set(droneId, start);
    await publishMessage(
      this.js,
      subjects.droneLocation(droneId),
      DroneLocationEventSchema,
      create(DroneLocationEventSchema, {
        droneId,
        deliveryId,
        position,
        stage,
        batteryPercent: 80,
        eventTime: timestampFromDate(new Date(start + sequence * 1_000)),
        speedMps,
        sequence: BigInt(sequence),
      }),
    );
  }

  /** Resolves once the telemetry consumer has handled (acked) every message stored so far. */
  async telemetryHandled(): Promise<void> {
    await vi.waitFor(async () => {
      const info = await this.jsm.consumers.info(STREAMS.DRONE_TELEMETRY.name, TELEMETRY_CONSUMER);
      if (info.num_pending > 0 || info.num_ack_pending > 0) throw new Error(`telemetry pending ${info.num_pending}/${info.num_ack_pending}`);
    }, EVENTUALLY);
  }

  /** Waits until the delivery is at `stage`, and answers it. */
  async reaches(deliveryId: string, stage: DeliveryStage): Promise<Delivery> {
    return vi.waitFor(async () => {
      const { delivery } = await this.client.getDelivery({ deliveryId });
      if (delivery?.stage !== stage) throw new Error(`delivery ${deliveryId} is ${DeliveryStage[delivery?.stage ?? 0]}`);
      return delivery;
    }, EVENTUALLY);
  }

  /** Every status message of a delivery in DELIVERY_STATUS, in stream order. */
  async statusMessages(deliveryId: string): Promise<StatusMessage[]> {
    const consumer = await this.js.consumers.get(STATUS_STREAM, { filterSubjects: subjects.deliveryStatus(deliveryId) });
    const out: StatusMessage[] = [];
    for (;;) {
      const msg = await consumer.next({ expires: 1_000 });
      if (!msg) break;
      out.push({
        seq: msg.seq,
        msgId: msg.headers?.get(MESSAGE_ID_HEADER) ?? "",
        historyIndex: msg.headers?.get(HISTORY_INDEX_HEADER) ?? "",
        event: decodeMessage(msg, DeliveryStatusEventSchema),
      });
      if (msg.info.pending === 0) break;
    }
    await consumer.delete().catch(() => undefined);
    return out;
  }

  /** Waits until the delivery's status messages are exactly `stages`, and answers them. */
  async published(deliveryId: string, stages: readonly DeliveryStage[]): Promise<StatusMessage[]> {
    return vi.waitFor(async () => {
      const messages = await this.statusMessages(deliveryId);
      const seen = messages.map((m) => DeliveryStage[m.event.stage]);
      const want = stages.map((s) => DeliveryStage[s]);
      if (JSON.stringify(seen) !== JSON.stringify(want)) throw new Error(`published ${seen.join(",")}; expected ${want.join(",")}`);
      return messages;
    }, EVENTUALLY);
  }
}

export interface StatusMessage {
  readonly seq: number;
  readonly msgId: string;
  readonly historyIndex: string;
  readonly event: DeliveryStatusEvent;
}

export { FlightStage };
