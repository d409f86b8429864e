// The status-event outbox: a stage written but not published (a crash, JetStream away) is
// published later, once, in order.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { createClient } from "../../lib/grpc/index.js";
import { ensureStreams } from "../../lib/nats/streams.js";
import { startTestService } from "../../test/harness/services.js";
import { deliveryKey, outboxKey } from "./keys.js";
import { enterStage } from "./lifecycle.js";
import { deliveryModule } from "./module.js";
import { STATUS_STREAM } from "./status-stream.js";
import { DeliveryTestBed, EVENTUALLY, inHours } from "./test-support.js";

const { CREATED, RESCHEDULED, CANCELLED } = DeliveryStage;

let bed: DeliveryTestBed;

beforeAll(async () => {
  bed = await DeliveryTestBed.start({ DELIVERY_OUTBOX_INTERVAL_MS: "100", DELIVERY_OUTBOX_SETTLE_MS: "0" });
});

afterAll(async () => {
  await bed?.stop();
});

async function outboxEntry(deliveryId: string) {
  return bed.store.outbox.get(outboxKey(deliveryId));
}

describe("the status-event outbox", () => {
  it("publishes a stage whose writer stopped between the write and the publish", async () => {
    await bed.schedule("dlv-crashed", "drone-crash");
    await bed.published("dlv-crashed", [CREATED]);
    // What a writer leaves when it dies right after its write: the record and the outbox entry
    // (written here in the other order, so that no sweep runs between them and finds nothing to do).
    await bed.store.records.mutate(deliveryKey("dlv-crashed"), (current) => enterStage(current!, CANCELLED, new Date(), "crashed writer"));
    await bed.store.outbox.put(outboxKey("dlv-crashed"), timestampFromDate(new Date()));

    const messages = await bed.published("dlv-crashed", [CREATED, CANCELLED]);
    expect(messages[1]).toMatchObject({ msgId: "dlv-crashed:CANCELLED", event: { reason: "crashed writer", previousStage: CREATED } });
    await vi.waitFor(async () => expect(await outboxEntry("dlv-crashed")).toBeUndefined(), EVENTUALLY);
  });

  it("keeps the events while DELIVERY_STATUS is away and publishes them after a restart", async () => {
    await bed.schedule("dlv-away", "drone-away");
    await bed.published("dlv-away", [CREATED]);
    await vi.waitFor(async () => {
      const { events } = await bed.client.getDeliveryHistory({ deliveryId: "dlv-away" });
      expect(events.map((e) => e.stage)).toEqual([CREATED]);
    }, EVENTUALLY);

    await bed.jsm.streams.delete(STATUS_STREAM);
    // The write succeeds; its event cannot be published and waits in the outbox.
    const { delivery } = await bed.client.cancelDelivery({ deliveryId: "dlv-away", reason: "stream away" });
    expect(delivery?.stage).toBe(CANCELLED);
    expect(await outboxEntry("dlv-away")).toBeDefined();

    await bed.stopService();
    await ensureStreams(bed.jsm);
    await bed.startService();
    // The new stream lost Created too: the whole history is published again, in order, once.
    const messages = await bed.published("dlv-away", [CREATED, CANCELLED]);
    expect(messages.map((m) => m.msgId)).toEqual(["dlv-away:CREATED", "dlv-away:CANCELLED"]);
    await vi.waitFor(async () => expect(await outboxEntry("dlv-away")).toBeUndefined(), EVENTUALLY);
    // The history subscriber keeps each stage once although it saw Created twice.
    await vi.waitFor(async () => {
      const { events } = await bed.client.getDeliveryHistory({ deliveryId: "dlv-away" });
      expect(events.map((e) => e.stage)).toEqual([CREATED, CANCELLED]);
    }, EVENTUALLY);
  });

  it("publishes the whole history again when the stream lost the events this instance published", async () => {
    await bed.schedule("dlv-lost", "drone-lost");
    await bed.published("dlv-lost", [CREATED]);
    // The instance knows Created as the delivery's latest stored event; the stream starts over.
    await bed.jsm.streams.delete(STATUS_STREAM);
    await ensureStreams(bed.jsm);
    await bed.client.cancelDelivery({ deliveryId: "dlv-lost", reason: "stream lost" });
    // The publish conditional on the remembered event is refused; the lookup finds nothing.
    const messages = await bed.published("dlv-lost", [CREATED, CANCELLED]);
    expect(messages.map((m) => m.msgId)).toEqual(["dlv-lost:CREATED", "dlv-lost:CANCELLED"]);
  });

  it("publishes each stage once and in history order when two instances change one delivery at once", async () => {
    const second = await startTestService(deliveryModule, bed.nats.url, { env: bed.env });
    const other = createClient(DeliveryService, { address: second.address });
    try {
      await bed.schedule("dlv-two", "drone-two");
      const clients = [bed.client, other];
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          clients[i % 2]!.rescheduleDelivery({ deliveryId: "dlv-two", deadline: inHours(30 + i), updateMask: { paths: ["deadline"] } }),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled").length).toBeGreaterThan(0);
      await other.cancelDelivery({ deliveryId: "dlv-two", reason: "done" });
      const { delivery } = await bed.client.getDelivery({ deliveryId: "dlv-two" });
      const stages = delivery!.history.map((h) => h.stage);
      expect(stages[0]).toBe(CREATED);
      expect(stages.at(-1)).toBe(CANCELLED);
      expect(stages.slice(1, -1).every((s) => s === RESCHEDULED)).toBe(true);

      const messages = await bed.published("dlv-two", stages);
      expect(messages.map((m) => m.event.eventTime)).toEqual(delivery!.history.map((h) => h.changeTime));
      expect(new Set(messages.map((m) => m.msgId)).size).toBe(stages.length);
    } finally {
      other.close();
      await second.stop();
    }
  });
});
