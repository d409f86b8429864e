// ListAllDeliveries and GetStageCounts: every owner's deliveries from the in-memory delivery view,
// over real gRPC against a real nats-server; and the view itself with thousands of records.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryFailureCode, DeliverySchema, DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { fieldViolations } from "../../lib/grpc/index.js";
import { rpcError } from "../../test/harness/rpc.js";
import type { KvRevisionProbe } from "../../lib/nats/kv.js";
import { DeliveryFleetView } from "./fleet-view.js";
import { deliveryKey } from "./keys.js";
import { DeliveryTestBed } from "./test-support.js";

let bed: DeliveryTestBed;

beforeAll(async () => {
  bed = await DeliveryTestBed.start();
});

afterAll(async () => {
  await bed?.stop();
});

async function allPages(stage: DeliveryStage, pageSize: number): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = "";
  do {
    const page = await bed.client.listAllDeliveries({ stage, pageSize, pageToken });
    expect(page.deliveries.length).toBeLessThanOrEqual(pageSize);
    ids.push(...page.deliveries.map((d) => d.deliveryId));
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return ids;
}

describe("every owner's deliveries", () => {
  it("lists them newest first across owners, by stage, a page at a time, and counts them by stage", async () => {
    // Created one after the other: each a later creation time than the one before.
    const made: { id: string; owner: string }[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `dlv-all-${i}`;
      const owner = i % 2 === 0 ? "acct-demo" : "acct-contoso";
      await bed.schedule(id, `drone-${i}`, { ownerId: owner });
      made.push({ id, owner });
      await new Promise((r) => setTimeout(r, 2));
    }
    await bed.client.cancelDelivery({ deliveryId: "dlv-all-1", reason: "changed my mind" });
    await bed.client.failDelivery({ deliveryId: "dlv-all-3", reason: "no drone was free", failureCode: DeliveryFailureCode.NO_DRONE_AVAILABLE });

    // Answers see every write made before the call (the view syncs with the bucket first).
    const all = await bed.client.listAllDeliveries({});
    expect(all.deliveries.map((d) => d.deliveryId)).toEqual(made.map((m) => m.id).reverse());
    expect(all.deliveries.map((d) => d.ownerId)).toEqual(made.map((m) => m.owner).reverse());
    expect(all.nextPageToken).toBe("");

    expect(await allPages(DeliveryStage.UNSPECIFIED, 2)).toEqual(made.map((m) => m.id).reverse());
    expect(await allPages(DeliveryStage.CANCELLED, 1)).toEqual(["dlv-all-1"]);
    expect(await allPages(DeliveryStage.FAILED, 1)).toEqual(["dlv-all-3"]);
    expect(await allPages(DeliveryStage.CREATED, 1)).toEqual(["dlv-all-4", "dlv-all-2", "dlv-all-0"]);
    expect(await allPages(DeliveryStage.COMPLETED, 10)).toEqual([]);

    const counts = await bed.client.getStageCounts({});
    expect(counts.counts.map((c) => [c.stage, Number(c.count)])).toEqual([
      [DeliveryStage.CREATED, 3],
      [DeliveryStage.CANCELLED, 1],
      [DeliveryStage.FAILED, 1],
    ]);
    expect(counts.total).toBe(5n);
    expect(counts.recentFailures.map((d) => [d.deliveryId, d.ownerId, d.failureCode, d.endReason])).toEqual([
      ["dlv-all-3", "acct-contoso", DeliveryFailureCode.NO_DRONE_AVAILABLE, "no drone was free"],
    ]);
    expect((await bed.client.getStageCounts({ recentFailuresLimit: 0 })).recentFailures).toHaveLength(1);
  });

  it("refuses a bad page size, stage or page token with INVALID_ARGUMENT", async () => {
    const fields = async (promise: Promise<unknown>) => {
      const error = await rpcError(promise);
      expect(error.code).toBe(Code.InvalidArgument);
      return fieldViolations(error).map((v) => v.field);
    };
    expect(await fields(bed.client.listAllDeliveries({ pageSize: 101 }))).toEqual(["page_size"]);
    expect(await fields(bed.client.listAllDeliveries({ stage: 99 as DeliveryStage }))).toEqual(["stage"]);
    expect(await fields(bed.client.listAllDeliveries({ pageToken: "not-a-token" }))).toEqual(["page_token"]);
    const first = await bed.client.listAllDeliveries({ pageSize: 1 });
    expect(first.nextPageToken).not.toBe("");
    // A token is only good for the stage it was issued for, and not for an owner's listing.
    expect(await fields(bed.client.listAllDeliveries({ stage: DeliveryStage.FAILED, pageToken: first.nextPageToken }))).toEqual(["page_token"]);
    expect(await fields(bed.client.listDeliveries({ ownerId: "acct-demo", pageToken: first.nextPageToken }))).toEqual(["page_token"]);
    expect(await fields(bed.client.getStageCounts({ recentFailuresLimit: 101 }))).toEqual(["recent_failures_limit"]);
  });

  it("rebuilds the view from the bucket after a restart", async () => {
    const before = await bed.client.listAllDeliveries({ pageSize: 100 });
    await bed.stopService();
    await bed.startService();
    const after = await bed.client.listAllDeliveries({ pageSize: 100 });
    expect(after.deliveries.map((d) => d.deliveryId)).toEqual(before.deliveries.map((d) => d.deliveryId));
  });
});

describe("the delivery view", () => {
  const probe: KvRevisionProbe = { lastRevision: async () => 0, nextRevision: async () => 0 };
  const record = (i: number, stage: DeliveryStage, createMs: number) =>
    toBinary(
      DeliverySchema,
      create(DeliverySchema, {
        deliveryId: `dlv-${String(i).padStart(5, "0")}`,
        ownerId: `acct-${i % 7}`,
        stage,
        createTime: timestampFromMs(createMs),
        updateTime: timestampFromMs(createMs + i),
      }),
    );

  it("pages and counts thousands of deliveries, applying changes and deletions in revision order", () => {
    const view = new DeliveryFleetView(undefined as never, probe, pino({ level: "silent" }));
    const n = 5000;
    const stages = [DeliveryStage.CREATED, DeliveryStage.COMPLETED, DeliveryStage.FAILED, DeliveryStage.HEADED_TO_PICKUP];
    for (let i = 0; i < n; i++) {
      view.apply({ key: deliveryKey(`dlv-${String(i).padStart(5, "0")}`), revision: i + 1, operation: "PUT", value: record(i, stages[i % 4]!, 1_800_000_000_000 + i) });
    }
    const counts = view.counts(20);
    expect(counts.total).toBe(n);
    expect([...counts.counts.values()]).toEqual([n / 4, n / 4, n / 4, n / 4]);
    expect(counts.recentFailures.map((d) => d.deliveryId)).toEqual(Array.from({ length: 20 }, (_, k) => `dlv-${String(n - 2 - 4 * k).padStart(5, "0")}`));

    // Every delivery once, newest first, through pages of 100.
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = view.page(DeliveryStage.UNSPECIFIED, 100, after);
      seen.push(...page.deliveries.map((d) => d.deliveryId));
      if (page.lastPosition === undefined) break;
      after = page.lastPosition;
    }
    expect(seen).toHaveLength(n);
    expect(seen[0]).toBe("dlv-04999");
    expect(seen.at(-1)).toBe("dlv-00000");

    // A change moves a delivery between stages; an older revision replayed changes nothing; a
    // deletion removes it.
    view.apply({ key: deliveryKey("dlv-00000"), revision: n + 1, operation: "PUT", value: record(0, DeliveryStage.CANCELLED, 1_800_000_000_000) });
    view.apply({ key: deliveryKey("dlv-00000"), revision: 1, operation: "PUT", value: record(0, DeliveryStage.CREATED, 1_800_000_000_000) });
    expect(view.counts(0).counts.get(DeliveryStage.CANCELLED)).toBe(1);
    expect(view.counts(0).counts.get(DeliveryStage.CREATED)).toBe(n / 4 - 1);
    expect(view.page(DeliveryStage.CANCELLED, 10, undefined).deliveries.map((d) => d.deliveryId)).toEqual(["dlv-00000"]);
    view.apply({ key: deliveryKey("dlv-00000"), revision: n + 2, operation: "DEL", value: new Uint8Array() });
    expect(view.counts(0).total).toBe(n - 1);
    expect(view.counts(0).counts.get(DeliveryStage.CANCELLED)).toBeUndefined();
  });
});
