// WatchDelivery: the current status, then status events and live positions, until the end.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { WatchDeliveryResponse } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { STATUS_STREAM } from "./status-stream.js";
import { DeliveryTestBed, DROPOFF, EVENTUALLY, FlightStage, PICKUP } from "./test-support.js";

const MIDWAY = { latitude: 47.613, longitude: -122.34, altitude: 80 };
const NEAR_DROPOFF = { latitude: 47.619, longitude: -122.348, altitude: 40 };
const { CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED, CANCELLED } = DeliveryStage;

let bed: DeliveryTestBed;

beforeAll(async () => {
  bed = await DeliveryTestBed.start();
});

afterAll(async () => {
  await bed?.stop();
});

/** A watch read one update at a time. */
function watch(deliveryId: string, options: { afterSequence?: bigint; includePositions?: boolean; signal?: AbortSignal; timeoutMs?: number } = {}) {
  const { signal, timeoutMs, ...request } = options;
  const stream = bed.client.watchDelivery({ deliveryId, ...request }, { ...(signal ? { signal } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
  const iterator = stream[Symbol.asyncIterator]();
  return {
    async next(): Promise<WatchDeliveryResponse> {
      const next = await iterator.next();
      if (next.done) throw new Error("the watch ended");
      return next.value;
    },
    async rest(): Promise<WatchDeliveryResponse[]> {
      const out: WatchDeliveryResponse[] = [];
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) out.push(next.value);
      return out;
    },
  };
}

function stageOf(update: WatchDeliveryResponse): DeliveryStage | "position" {
  return update.update.case === "statusEvent" ? update.update.value.stage : "position";
}

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

describe("watching a delivery", () => {
  it("sends the current status, then every stage as it is entered, and ends at Completed", async () => {
    await bed.schedule("dlv-live", "drone-live");
    const created = await bed.published("dlv-live", [CREATED]);
    const live = watch("dlv-live");
    const first = await live.next();
    expect(stageOf(first)).toBe(CREATED);
    expect(first.sequence).toBe(BigInt(created[0]!.seq));

    await bed.fly("drone-live", "dlv-live", FlightStage.HEADED_TO_PICKUP, 1, PICKUP);
    expect(stageOf(await live.next())).toBe(HEADED_TO_PICKUP);
    await bed.fly("drone-live", "dlv-live", FlightStage.HEADED_TO_DROPOFF, 2, MIDWAY);
    await bed.fly("drone-live", "dlv-live", FlightStage.DROPPING_OFF, 3, DROPOFF);
    const rest = await live.rest();
    expect(rest.map(stageOf)).toEqual([HEADED_TO_DROPOFF, COMPLETED]);

    // Each update carries the stream sequence of its event, so the stream tells what was missed.
    const published = await bed.published("dlv-live", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(rest.map((u) => u.sequence)).toEqual(published.slice(2).map((m) => BigInt(m.seq)));
    expect(rest.at(-1)?.update.value).toEqual(published[3]?.event);
  });

  it("resumes after a sequence: the current status only when it is newer, then what follows", async () => {
    await bed.schedule("dlv-resume", "drone-resume");
    await bed.fly("drone-resume", "dlv-resume", FlightStage.HEADED_TO_PICKUP, 1, PICKUP);
    const [created, toPickup] = await bed.published("dlv-resume", [CREATED, HEADED_TO_PICKUP]);

    // Saw Created: the current status (HeadedToPickup) is news.
    const behind = watch("dlv-resume", { afterSequence: BigInt(created!.seq) });
    const current = await behind.next();
    expect(stageOf(current)).toBe(HEADED_TO_PICKUP);
    expect(current.sequence).toBe(BigInt(toPickup!.seq));
    // Saw everything: nothing until the next change.
    const upToDate = watch("dlv-resume", { afterSequence: BigInt(toPickup!.seq) });

    await bed.fly("drone-resume", "dlv-resume", FlightStage.HEADED_TO_DROPOFF, 2, MIDWAY);
    const toDropoff = (await bed.published("dlv-resume", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF]))[2]!;
    const next = await upToDate.next();
    expect([stageOf(next), next.sequence]).toEqual([HEADED_TO_DROPOFF, BigInt(toDropoff.seq)]);
    expect(stageOf(await behind.next())).toBe(HEADED_TO_DROPOFF);

    await bed.fly("drone-resume", "dlv-resume", FlightStage.DROPPING_OFF, 3, DROPOFF);
    expect((await upToDate.rest()).map(stageOf)).toEqual([COMPLETED]);
    expect((await behind.rest()).map(stageOf)).toEqual([COMPLETED]);

    // Resuming an ended delivery after its last event: nothing more to send.
    const all = await bed.published("dlv-resume", [CREATED, HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(await watch("dlv-resume", { afterSequence: BigInt(all[3]!.seq) }).rest()).toEqual([]);
    expect((await watch("dlv-resume", { afterSequence: BigInt(all[2]!.seq) }).rest()).map(stageOf)).toEqual([COMPLETED]);
  });

  it("includes the drone's live positions when asked", async () => {
    await bed.schedule("dlv-positions", "drone-positions");
    const withPositions = watch("dlv-positions", { includePositions: true });
    const first = await withPositions.next();
    const statusOnly = watch("dlv-positions");
    await statusOnly.next();

    await bed.fly("drone-positions", "dlv-positions", FlightStage.HEADED_TO_DROPOFF, 1, MIDWAY, 10);
    await bed.fly("drone-positions", "dlv-positions", FlightStage.HEADED_TO_DROPOFF, 2, NEAR_DROPOFF, 10);
    // Another delivery's position from another drone is not this delivery's.
    await bed.fly("drone-elsewhere", "dlv-elsewhere", FlightStage.HEADED_TO_DROPOFF, 1, PICKUP, 10);
    const seen: WatchDeliveryResponse[] = [];
    while (seen.filter((u) => u.update.case === "position").length < 2) seen.push(await withPositions.next());
    const positions = seen.filter((u) => u.update.case === "position").map((u) => u.update.value);
    expect(positions.map((p) => p?.location)).toMatchObject([MIDWAY, NEAR_DROPOFF]);
    for (const p of positions) expect(p?.deliveryEta).toBeDefined();
    // A position carries the sequence of the last status sent.
    const statuses = seen.filter((u) => u.update.case === "statusEvent");
    const lastStatusSequence = statuses.length > 0 ? statuses.at(-1)!.sequence : first.sequence;
    expect(seen.filter((u) => u.update.case === "position").at(-1)?.sequence).toBe(lastStatusSequence);

    await bed.fly("drone-positions", "dlv-positions", FlightStage.DROPPING_OFF, 3, DROPOFF, 0);
    const rest = [...seen, ...(await withPositions.rest())];
    expect(rest.filter((u) => u.update.case === "statusEvent").map(stageOf)).toEqual([HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
    expect(stageOf(rest.at(-1)!)).toBe(COMPLETED);
    expect((await statusOnly.rest()).map(stageOf)).toEqual([HEADED_TO_PICKUP, HEADED_TO_DROPOFF, COMPLETED]);
  });

  it("ends at a cancel, answers a cancelled delivery with its status, and errors as the contract says", async () => {
    await bed.schedule("dlv-cancel", "drone-cancel");
    const live = watch("dlv-cancel");
    expect(stageOf(await live.next())).toBe(CREATED);
    await bed.client.cancelDelivery({ deliveryId: "dlv-cancel", reason: "no longer needed" });
    const rest = await live.rest();
    expect(rest.map(stageOf)).toEqual([CANCELLED]);
    expect(rest[0]?.update.value).toMatchObject({ reason: "no longer needed" });

    const ended = await watch("dlv-cancel").rest();
    expect(ended.map(stageOf)).toEqual([CANCELLED]);
    expect(ended[0]?.sequence).toBe(rest[0]?.sequence);

    expect((await failure(watch("dlv-unknown").next())).code).toBe(Code.NotFound);
    expect((await failure(watch("").next())).code).toBe(Code.InvalidArgument);
  });

  it("ends when the caller leaves or its deadline passes, and leaves no consumer behind", async () => {
    await bed.schedule("dlv-leave", "drone-leave");
    const controller = new AbortController();
    const left = watch("dlv-leave", { signal: controller.signal, includePositions: true });
    await left.next();
    controller.abort();
    expect((await failure(left.rest())).code).toBe(Code.Canceled);

    const timed = watch("dlv-leave", { timeoutMs: 300 });
    await timed.next();
    expect((await failure(timed.rest())).code).toBe(Code.DeadlineExceeded);

    // Only the history subscriber's durable consumer stays on the stream.
    await vi.waitFor(async () => {
      const names = [];
      for await (const page of await bed.jsm.consumers.list(STATUS_STREAM)) names.push(page.name);
      expect(names).toEqual(["delivery-history"]);
    }, EVENTUALLY);
  });
});
