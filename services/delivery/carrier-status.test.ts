// The Delivery service's carrier status consumer against a real nats-server: an outside carrier's
// stages move a third-party delivery to Completed, early events wait for their record, repeats
// and other carriers' events change nothing; and the same with the Third-party service's own
// carrier simulator publishing.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { LocationSchema } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { CarrierStage, CarrierStatusEventSchema } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_events_pb.js";
import { ThirdPartyTransportService } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { createClient } from "../../lib/grpc/index.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { startTestService } from "../../test/harness/services.js";
import { thirdPartyModule } from "../thirdparty/module.js";
import { CARRIER_STATUS_CONSUMER } from "./carrier-status.js";
import { DeliveryTestBed, DROPOFF, EVENTUALLY, PICKUP } from "./test-support.js";

const CARRIER = "Alpha Freight";
const MIDWAY = { latitude: (PICKUP.latitude + DROPOFF.latitude) / 2, longitude: (PICKUP.longitude + DROPOFF.longitude) / 2, altitude: 0 };
const ELSEWHERE = { latitude: 47.65, longitude: -122.3, altitude: 0 };

let bed: DeliveryTestBed;

beforeAll(async () => {
  bed = await DeliveryTestBed.start({ DELIVERY_CARRIER_RETRY_MS: "50" });
});

afterAll(async () => {
  await bed?.stop();
});

const thirdParty = (trackingId: string) => ({ carrier: { case: "thirdParty" as const, value: { carrier: CARRIER, trackingId } } });

/** Publishes a carrier status event as the Third-party service does. */
async function carrier(deliveryId: string, trackingId: string, stage: CarrierStage, sequence: number, position?: MessageInitShape<typeof LocationSchema>): Promise<void> {
  await publishMessage(
    bed.js,
    subjects.carrierStatus(deliveryId),
    CarrierStatusEventSchema,
    create(CarrierStatusEventSchema, {
      deliveryId,
      trackingId,
      carrier: CARRIER,
      stage,
      position,
      deliveryEta: timestampFromMs(Date.now() + 3_600_000),
      eventTime: timestampFromMs(Date.now()),
      sequence: BigInt(sequence),
    }),
    { msgId: `${deliveryId}:${trackingId}:${CarrierStage[stage]}` },
  );
}

/** Resolves once the consumer has handled (acked) every carrier message stored so far. */
async function carrierHandled(): Promise<void> {
  await vi.waitFor(async () => {
    const info = await bed.jsm.consumers.info(STREAMS.CARRIER_STATUS.name, CARRIER_STATUS_CONSUMER);
    if (info.num_pending > 0 || info.num_ack_pending > 0) throw new Error(`carrier status pending ${info.num_pending}/${info.num_ack_pending}`);
  }, EVENTUALLY);
}

describe("carrier status consumer", () => {
  it("moves a third-party delivery through its stages to Completed at the drop-off", async () => {
    await bed.schedule("tp-1", "unused", thirdParty("AF-1"));
    await carrier("tp-1", "AF-1", CarrierStage.BOOKED, 1);
    await carrier("tp-1", "AF-1", CarrierStage.HEADED_TO_PICKUP, 2);
    expect((await bed.reaches("tp-1", DeliveryStage.HEADED_TO_PICKUP)).lastKnownLocation).toMatchObject(PICKUP);
    await carrier("tp-1", "AF-1", CarrierStage.PICKED_UP, 3, PICKUP);
    await carrier("tp-1", "AF-1", CarrierStage.IN_TRANSIT, 4, MIDWAY);
    await vi.waitFor(async () => {
      const { delivery } = await bed.client.getDelivery({ deliveryId: "tp-1" });
      expect(delivery?.stage).toBe(DeliveryStage.HEADED_TO_DROPOFF);
      expect(delivery?.lastKnownLocation).toMatchObject(MIDWAY);
    }, EVENTUALLY);
    await carrier("tp-1", "AF-1", CarrierStage.DELIVERED, 5, DROPOFF);
    const done = await bed.reaches("tp-1", DeliveryStage.COMPLETED);
    expect(done.lastKnownLocation).toMatchObject(DROPOFF);
    expect(done.pickupEta).toBeUndefined();
    await bed.published("tp-1", [DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP, DeliveryStage.HEADED_TO_DROPOFF, DeliveryStage.COMPLETED]);
  });

  it("applies an event that came before its delivery record once the record exists", async () => {
    await carrier("tp-early", "AF-2", CarrierStage.PICKED_UP, 3, PICKUP);
    // The event waits (nak with a delay) while there is no record.
    await vi.waitFor(async () => {
      const info = await bed.jsm.consumers.info(STREAMS.CARRIER_STATUS.name, CARRIER_STATUS_CONSUMER);
      expect(info.num_redelivered).toBeGreaterThan(0);
    }, EVENTUALLY);
    await bed.schedule("tp-early", "unused", thirdParty("AF-2"));
    const moved = await bed.reaches("tp-early", DeliveryStage.HEADED_TO_DROPOFF);
    expect(moved.lastKnownLocation).toMatchObject(PICKUP);
    // Entered once, with the stage in between.
    await bed.published("tp-early", [DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP, DeliveryStage.HEADED_TO_DROPOFF]);
  });

  it("ignores repeats, older events and events of a carrier the delivery does not name", async () => {
    await bed.schedule("tp-3", "unused", thirdParty("AF-3"));
    await carrier("tp-3", "AF-3", CarrierStage.IN_TRANSIT, 4, MIDWAY);
    await bed.reaches("tp-3", DeliveryStage.HEADED_TO_DROPOFF);
    await carrier("tp-3", "AF-3", CarrierStage.PICKED_UP, 3, ELSEWHERE);
    await carrier("tp-3", "AF-OTHER", CarrierStage.DELIVERED, 5, DROPOFF);
    await carrierHandled();
    const { delivery } = await bed.client.getDelivery({ deliveryId: "tp-3" });
    expect(delivery?.stage).toBe(DeliveryStage.HEADED_TO_DROPOFF);
    expect(delivery?.lastKnownLocation).toMatchObject(MIDWAY);
    // A drone delivery is not moved by a carrier either.
    await bed.schedule("drone-d", "drone-1");
    await carrier("drone-d", "AF-4", CarrierStage.DELIVERED, 5, DROPOFF);
    await carrierHandled();
    expect((await bed.client.getDelivery({ deliveryId: "drone-d" })).delivery?.stage).toBe(DeliveryStage.CREATED);
  });
});

describe("with the Third-party service's carrier simulator", () => {
  let thirdparty: RunningService;

  beforeAll(async () => {
    thirdparty = await startTestService(thirdPartyModule, bed.nats.url, {
      env: {
        THIRDPARTY_TIME_SCALE: "3000",
        THIRDPARTY_CARRIERS: CARRIER,
        THIRDPARTY_PICKUP_LEAD_MINUTES: "10",
        THIRDPARTY_SPEED_KMH: "600",
        THIRDPARTY_HANDLING_MINUTES: "5",
      },
    });
  });

  afterAll(async () => {
    await thirdparty?.stop();
  });

  it("completes a delivery booked with a carrier, the record made after the booking", async () => {
    const client = createClient(ThirdPartyTransportService, { address: thirdparty.address });
    try {
      const { pickup } = await client.arrangePickup({
        deliveryId: "tp-sim",
        ownerId: "acct-demo",
        pickup: PICKUP,
        dropoff: DROPOFF,
        packages: [{ packageId: "tp-sim-pkg", size: PackageSize.LARGE, weightKg: 300 }],
      });
      if (!pickup) throw new Error("no booking");
      await bed.schedule("tp-sim", "unused", { ...thirdParty(pickup.trackingId), pickupEta: pickup.pickupEta, deliveryEta: pickup.deliveryEta });
      const done = await bed.reaches("tp-sim", DeliveryStage.COMPLETED);
      expect(done.lastKnownLocation).toMatchObject(DROPOFF);
      await bed.published("tp-sim", [DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP, DeliveryStage.HEADED_TO_DROPOFF, DeliveryStage.COMPLETED]);
    } finally {
      client.close();
    }
  });
});
