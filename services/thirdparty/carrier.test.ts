// The carrier simulator of the Third-party service against a real nats-server: the stages of a
// booking published in order at a high time scale, a cancel, catching up after a restart, and
// one publisher among several instances.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { connect, type JetStreamClient, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { CarrierStage, CarrierStatusEventSchema, type CarrierStatusEvent } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_events_pb.js";
import {
  CarrierProgressSchema,
  PickupSchema,
  PickupStatus,
  ThirdPartyTransportService,
  type Pickup,
} from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { createClient, type Client } from "../../lib/grpc/index.js";
import { decodeMessage, MESSAGE_ID_HEADER } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { nextStage, planOf } from "./carrier-plan.js";
import { readThirdPartyConfig } from "./config.js";
import { thirdPartyModule } from "./module.js";
import { greatCircleKm } from "./route.js";
import { openPickupStore, progressKey, progressStoreOf, type PickupStore } from "./store.js";

type ThirdPartyClient = Client<typeof ThirdPartyTransportService>;

const SCALE = 3_000;
const ENV = {
  THIRDPARTY_TIME_SCALE: SCALE.toString(),
  THIRDPARTY_CARRIERS: "Alpha Freight",
  THIRDPARTY_PICKUP_LEAD_MINUTES: "10",
  THIRDPARTY_APPROACH_MINUTES: "5",
  THIRDPARTY_SPEED_KMH: "600",
  THIRDPARTY_HANDLING_MINUTES: "5",
  THIRDPARTY_SIMULATOR_LEASE_MS: "400",
};
const CONFIG = readThirdPartyConfig(ENV);
const PICKUP = { latitude: 47.6062, longitude: -122.3321, altitude: 0 };
const DROPOFF = { latitude: 47.7, longitude: -122.2, altitude: 0 };
const ALL_STAGES = ["BOOKED", "HEADED_TO_PICKUP", "PICKED_UP", "IN_TRANSIT", "DELIVERED"];
/** Polling for what the simulator does in the background; no assertion on how long it takes. */
const EVENTUALLY = { timeout: 20_000, interval: 25 } as const;

let nats: TestNatsServer;
let service: RunningService;
let client: ThirdPartyClient;
let nc: NatsConnection;
let js: JetStreamClient;
let store: PickupStore;

interface Published {
  readonly msgId: string;
  readonly event: CarrierStatusEvent;
}

/** Every carrier status message of a delivery in CARRIER_STATUS, in stream order. */
async function published(deliveryId: string): Promise<Published[]> {
  const consumer = await js.consumers.get(STREAMS.CARRIER_STATUS.name, { filterSubjects: subjects.carrierStatus(deliveryId) });
  const out: Published[] = [];
  try {
    for (;;) {
      const msg = await consumer.next({ expires: 1_000 });
      if (!msg) break;
      out.push({ msgId: msg.headers?.get(MESSAGE_ID_HEADER) ?? "", event: decodeMessage(msg, CarrierStatusEventSchema) });
      if (msg.info.pending === 0) break;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return out;
}

const names = (messages: readonly Published[]) => messages.map((m) => CarrierStage[m.event.stage]);

/** Waits until the delivery's carrier messages are exactly `stages`, and answers them. */
async function publishedExactly(deliveryId: string, stages: readonly string[]): Promise<Published[]> {
  return vi.waitFor(async () => {
    const messages = await published(deliveryId);
    expect(names(messages)).toEqual(stages);
    return messages;
  }, EVENTUALLY);
}

function arrange(deliveryId: string, extra: { pickupWindow?: { startTime: ReturnType<typeof timestampFromMs>; endTime: ReturnType<typeof timestampFromMs> } } = {}) {
  return client.arrangePickup({
    deliveryId,
    ownerId: "acct-demo",
    pickup: PICKUP,
    dropoff: DROPOFF,
    packages: [{ packageId: `${deliveryId}-p1`, size: PackageSize.LARGE, weightKg: 300 }],
    ...extra,
  });
}

beforeAll(async () => {
  nats = await startNatsServer();
  service = await startTestService(thirdPartyModule, nats.url, { env: ENV });
  client = createClient(ThirdPartyTransportService, { address: service.address });
  nc = await connect({ servers: nats.url });
  js = nc.jetstream();
  store = await openPickupStore(js);
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await nc?.close();
  await nats?.stop();
});

describe("the booking's plan", () => {
  it("makes ETAs under the time scale, and orders the stages in time", async () => {
    const { pickup } = await arrange("plan-1");
    if (!pickup?.arrangeTime || !pickup.pickupEta || !pickup.deliveryEta) throw new Error("incomplete booking");
    const arranged = timestampMs(pickup.arrangeTime);
    expect(timestampMs(pickup.pickupEta) - arranged).toBe((10 * 60_000) / SCALE);
    const driveMs = (greatCircleKm(PICKUP, DROPOFF) / 600) * 3_600_000;
    expect(timestampMs(pickup.deliveryEta) - timestampMs(pickup.pickupEta)).toBe(Math.round((driveMs + 5 * 60_000) / SCALE));
    expect(pickup.pickup).toEqual(expect.objectContaining(PICKUP));

    const plan = planOf(pickup, CONFIG);
    expect(plan.map((s) => CarrierStage[s.stage])).toEqual(ALL_STAGES);
    expect(plan.map((s) => s.sequence)).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < plan.length; i++) expect(plan[i]!.atMs).toBeGreaterThanOrEqual(plan[i - 1]!.atMs);
    expect(plan[1]!.atMs).toBe(timestampMs(pickup.pickupEta) - (5 * 60_000) / SCALE);
  });

  it("ends a cancelled booking with CANCELLED after the stages due before the cancel, unless delivered", () => {
    const booking = create(PickupSchema, {
      deliveryId: "rules",
      trackingId: "AF-1",
      status: PickupStatus.CANCELLED,
      arrangeTime: timestampFromMs(1_000),
      pickupEta: timestampFromMs(5_000),
      deliveryEta: timestampFromMs(9_000),
      cancelTime: timestampFromMs(4_000),
    });
    const progress = (stage: CarrierStage, sequence: number) => create(CarrierProgressSchema, { stage, sequence: BigInt(sequence) });
    expect(CarrierStage[nextStage(booking, undefined, CONFIG)!.stage]).toBe("BOOKED");
    expect(nextStage(booking, progress(CarrierStage.HEADED_TO_PICKUP, 2), CONFIG)).toMatchObject({ stage: CarrierStage.CANCELLED, atMs: 4_000, sequence: 3 });
    expect(nextStage(booking, progress(CarrierStage.CANCELLED, 3), CONFIG)).toBeUndefined();
    expect(nextStage({ ...booking, cancelTime: timestampFromMs(20_000) }, progress(CarrierStage.DELIVERED, 5), CONFIG)).toBeUndefined();
  });
});

describe("the carrier simulator", () => {
  it("publishes a booking's stages in order, each once, with positions and ETAs", async () => {
    const { pickup } = await arrange("run-1");
    const messages = await publishedExactly("run-1", ALL_STAGES);
    expect(messages.map((m) => m.event.sequence)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(messages.map((m) => m.msgId)).toEqual(ALL_STAGES.map((s) => `run-1:${pickup?.trackingId}:${s}`));
    for (const { event } of messages) {
      expect(event).toMatchObject({ deliveryId: "run-1", trackingId: pickup?.trackingId, carrier: "Alpha Freight" });
      expect(event.deliveryEta).toEqual(pickup?.deliveryEta);
    }
    const [booked, , pickedUp, inTransit, delivered] = messages.map((m) => m.event);
    expect(booked?.pickupEta).toEqual(pickup?.pickupEta);
    expect(booked?.eventTime).toEqual(pickup?.arrangeTime);
    expect(pickedUp?.position).toMatchObject(PICKUP);
    expect(pickedUp?.pickupEta).toBeUndefined();
    expect(inTransit?.position?.latitude).toBeCloseTo((PICKUP.latitude + DROPOFF.latitude) / 2, 9);
    expect(delivered?.position).toMatchObject(DROPOFF);
    expect(delivered?.eventTime).toEqual(pickup?.deliveryEta);
    const progress = await progressStoreOf(store).get(progressKey("run-1"));
    expect(progress?.value).toMatchObject({ stage: CarrierStage.DELIVERED, sequence: 5n, trackingId: pickup?.trackingId });
    // The booking itself stays as it was made.
    expect((await client.getPickup({ deliveryId: "run-1" })).pickup).toEqual(pickup);
  });

  it("publishes CANCELLED when a booking is cancelled, and nothing after it", async () => {
    const start = Date.now() + 3_600_000;
    await arrange("cancel-1", { pickupWindow: { startTime: timestampFromMs(start), endTime: timestampFromMs(start + 3_600_000) } });
    await publishedExactly("cancel-1", ["BOOKED"]);
    expect((await client.cancelPickup({ deliveryId: "cancel-1", reason: "customer cancelled" })).cancelled).toBe(true);
    const messages = await publishedExactly("cancel-1", ["BOOKED", "CANCELLED"]);
    expect(messages[1]?.event.sequence).toBe(2n);
    expect(messages[1]?.event.position).toBeUndefined();
    expect(messages[1]?.event.deliveryEta).toBeUndefined();
    await vi.waitFor(async () => expect((await progressStoreOf(store).get(progressKey("cancel-1")))?.value.stage).toBe(CarrierStage.CANCELLED), EVENTUALLY);
    // Cancelling again changes nothing and publishes nothing.
    expect((await client.cancelPickup({ deliveryId: "cancel-1", reason: "again" })).cancelled).toBe(false);
    await service.stop();
    service = await startTestService(thirdPartyModule, nats.url, { env: ENV, port: service.port });
    client.close();
    client = createClient(ThirdPartyTransportService, { address: service.address });
    await publishedExactly("cancel-1", ["BOOKED", "CANCELLED"]);
  });

  it("catches up after a restart: stages that fell due meanwhile go out at once, none skipped or repeated", async () => {
    await service.stop();
    const now = Date.now();
    const booking = (deliveryId: string): Pickup =>
      create(PickupSchema, {
        deliveryId,
        ownerId: "acct-demo",
        carrier: "Alpha Freight",
        trackingId: `AF-${deliveryId.toUpperCase()}`,
        status: PickupStatus.ARRANGED,
        arrangeTime: timestampFromMs(now - 60_000),
        pickupEta: timestampFromMs(now - 40_000),
        deliveryEta: timestampFromMs(now - 20_000),
        pickup: PICKUP,
        dropoff: DROPOFF,
      });
    // Booked while no instance ran, and one whose first two stages went out before the stop.
    await store.create("late-1", booking("late-1"));
    await store.create("late-2", booking("late-2"));
    await progressStoreOf(store).create(
      progressKey("late-2"),
      create(CarrierProgressSchema, { deliveryId: "late-2", trackingId: "AF-LATE-2", stage: CarrierStage.HEADED_TO_PICKUP, sequence: 2n }),
    );
    service = await startTestService(thirdPartyModule, nats.url, { env: ENV, port: service.port });
    client.close();
    client = createClient(ThirdPartyTransportService, { address: service.address });

    const first = await publishedExactly("late-1", ALL_STAGES);
    expect(first.map((m) => m.event.eventTime && timestampMs(m.event.eventTime))).toEqual(planOf(booking("late-1"), CONFIG).map((s) => s.atMs));
    const second = await publishedExactly("late-2", ["PICKED_UP", "IN_TRANSIT", "DELIVERED"]);
    expect(second.map((m) => m.event.sequence)).toEqual([3n, 4n, 5n]);
  });

  it("publishes from one instance when several run", async () => {
    const second = await startTestService(thirdPartyModule, nats.url, { env: ENV });
    try {
      const ids = ["multi-1", "multi-2", "multi-3"];
      await Promise.all(ids.map((id) => arrange(id)));
      for (const id of ids) await publishedExactly(id, ALL_STAGES);
      // Every stage stored once, and each booking's progress written once per stage.
      for (const id of ids) {
        const kv = await js.views.kv("thirdparty-pickups", { bindOnly: true });
        let writes = 0;
        for await (const entry of await kv.history({ key: progressKey(id) })) if (entry.operation === "PUT") writes++;
        expect(writes, id).toBe(5);
      }
    } finally {
      await second.stop();
    }
  });
});
