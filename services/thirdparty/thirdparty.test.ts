// The Third-party service over real gRPC against a real nats-server.
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PackageSize, type PackageInfoSchema } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import {
  PickupStatus,
  ThirdPartyTransportService,
  type ArrangePickupRequestSchema,
} from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createClient, fieldViolations, type Client } from "../../lib/grpc/index.js";
import { ConfigError } from "../../lib/service/config.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { healthStatus, reflectionFilesFor, reflectionServices } from "../../test/harness/grpc-probes.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { DEADLINE_UNREACHABLE, PICKUP_CANCELLED } from "./booking.js";
import { carrierCode, chooseCarrier, fnv1a32 } from "./carriers.js";
import { DEFAULT_CARRIERS, parseCarriers, readThirdPartyConfig } from "./config.js";
import { thirdPartyModule } from "./module.js";
import { EARTH_RADIUS_KM } from "./route.js";
import { PICKUPS_BUCKET } from "./store.js";
import { rpcError } from "../../test/harness/rpc.js";

type ThirdPartyClient = Client<typeof ThirdPartyTransportService>;
/** A request as plain fields (not a built message), so overrides can be spread over defaults. */
type ArrangeInit = Exclude<MessageInitShape<typeof ArrangePickupRequestSchema>, { $typeName: string }>;
type ParcelInit = MessageInitShape<typeof PackageInfoSchema>;

const CARRIERS = ["Alpha Freight", "Beta Couriers", "Gamma"];
const ENV = {
  THIRDPARTY_CARRIERS: CARRIERS.join(", "),
  THIRDPARTY_PICKUP_LEAD_MINUTES: "45",
  THIRDPARTY_SPEED_KMH: "50",
  THIRDPARTY_HANDLING_MINUTES: "15",
};
const LEAD_MS = 45 * 60_000;
const HANDLING_MS = 15 * 60_000;
const DAY_MS = 24 * 3_600_000;
/** One degree of longitude along the equator at 50 km/h. */
const ONE_DEGREE_DRIVE_MS = ((EARTH_RADIUS_KM * Math.PI) / 180 / 50) * 3_600_000;

let nats: TestNatsServer;
let service: RunningService;
let client: ThirdPartyClient;


function parcel(id: string, overrides: ParcelInit = {}): ParcelInit {
  return { packageId: id, size: PackageSize.LARGE, weightKg: 42, tag: "pallet", ...overrides };
}

/** A valid request along the equator, from (0, 0) to (0, 1), with no window and no deadline. */
function arrangeRequest(deliveryId: string, overrides: ArrangeInit = {}): ArrangeInit {
  return {
    deliveryId,
    ownerId: "acct-demo",
    pickup: { latitude: 0, longitude: 0, altitude: 0 },
    dropoff: { latitude: 0, longitude: 1, altitude: 0 },
    packages: [parcel(`${deliveryId}.p1`)],
    ...overrides,
  };
}

function arrange(deliveryId: string, overrides: ArrangeInit = {}, via: ThirdPartyClient = client) {
  return via.arrangePickup(arrangeRequest(deliveryId, overrides));
}

/** How many values the bucket ever stored for a delivery (one per create or update). */
async function writes(deliveryId: string): Promise<number> {
  const kv = await service.nc.jetstream().views.kv(PICKUPS_BUCKET, { bindOnly: true });
  let count = 0;
  for await (const entry of await kv.history({ key: deliveryId })) if (entry.operation === "PUT") count++;
  return count;
}

function settle<T>(promise: Promise<T>): Promise<{ ok: T } | { code: number; error: ConnectError }> {
  return promise.then(
    (ok) => ({ ok }),
    (error: ConnectError) => ({ code: error.code, error }),
  );
}

beforeAll(async () => {
  nats = await startNatsServer();
  service = await startTestService(thirdPartyModule, nats.url, { env: ENV });
  client = createClient(ThirdPartyTransportService, { address: service.address });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await nats?.stop();
});

describe("carrier choice and configuration", () => {
  it("picks the carrier from a hash of the delivery id, the same every time", () => {
    for (const id of ["d-1", "d-2", "delivery_3", "x"]) {
      expect(chooseCarrier(id, CARRIERS)).toBe(CARRIERS[fnv1a32(id) % CARRIERS.length]);
      expect(chooseCarrier(id, CARRIERS)).toBe(chooseCarrier(id, [...CARRIERS]));
    }
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    const used = new Set(Array.from({ length: 30 }, (_, i) => chooseCarrier(`spread-${i}`, CARRIERS)));
    expect(used.size).toBe(CARRIERS.length);
  });

  it("derives tracking prefixes from carrier names", () => {
    expect(carrierCode("Contoso Freight")).toBe("CF");
    expect(carrierCode("Gamma")).toBe("GAM");
    expect(carrierCode("a b c d e")).toBe("ABCD");
  });

  it("reads its settings with defaults and refuses bad ones", () => {
    expect(readThirdPartyConfig({})).toEqual({
      carriers: DEFAULT_CARRIERS,
      pickupLeadMinutes: 60,
      speedKmh: 40,
      handlingMinutes: 30,
      timeScale: 1,
      approachMinutes: 15,
      simulatorLeaseMs: 5_000,
    });
    expect(readThirdPartyConfig({ DRONE_TIME_SCALE: "60" }).timeScale).toBe(60);
    expect(readThirdPartyConfig({ DRONE_TIME_SCALE: "60", THIRDPARTY_TIME_SCALE: "120" }).timeScale).toBe(120);
    expect(() => readThirdPartyConfig({ THIRDPARTY_TIME_SCALE: "0" })).toThrow(/THIRDPARTY_TIME_SCALE/);
    expect(() => readThirdPartyConfig({ DRONE_TIME_SCALE: "fast" })).toThrow(/DRONE_TIME_SCALE/);
    expect(parseCarriers(" One ,, Two Trucks ")).toEqual(["One", "Two Trucks"]);
    expect(() => parseCarriers(" , ")).toThrow(ConfigError);
    expect(() => parseCarriers("One,one")).toThrow(/listed twice/);
    expect(() => readThirdPartyConfig({ THIRDPARTY_SPEED_KMH: "0" })).toThrow(/THIRDPARTY_SPEED_KMH/);
    expect(() => readThirdPartyConfig({ THIRDPARTY_PICKUP_LEAD_MINUTES: "soon" })).toThrow(/THIRDPARTY_PICKUP_LEAD_MINUTES/);
  });
});

describe("arrange and get", () => {
  it("books the chosen carrier with ETAs from the pickup window, the distance and the handling time", async () => {
    const windowStart = Date.now() + 2 * DAY_MS;
    const before = Date.now();
    const { pickup } = await arrange("d-window", {
      pickupWindow: { startTime: timestampFromMs(windowStart), endTime: timestampFromMs(windowStart + 3_600_000) },
      deadline: timestampFromMs(windowStart + DAY_MS),
    });
    const after = Date.now();
    expect(pickup).toMatchObject({
      deliveryId: "d-window",
      ownerId: "acct-demo",
      carrier: chooseCarrier("d-window", CARRIERS),
      status: PickupStatus.ARRANGED,
      cancelReason: "",
    });
    expect(pickup?.cancelTime).toBeUndefined();
    expect(pickup?.trackingId).toMatch(new RegExp(`^${carrierCode(pickup?.carrier ?? "")}-[0-9A-HJKMNP-TV-Z]{12}$`));
    expect(timestampMs(pickup!.pickupEta!)).toBe(windowStart);
    expect(timestampMs(pickup!.deliveryEta!) - windowStart).toBeCloseTo(ONE_DEGREE_DRIVE_MS + HANDLING_MS, -1);
    expect(timestampMs(pickup!.arrangeTime!)).toBeGreaterThanOrEqual(before);
    expect(timestampMs(pickup!.arrangeTime!)).toBeLessThanOrEqual(after);

    const got = await client.getPickup({ deliveryId: "d-window" });
    expect(got.pickup).toEqual(pickup);
  });

  it("without a window, sends the carrier after the lead time; with an open window, now", async () => {
    const before = Date.now();
    const lead = (await arrange("d-asap")).pickup!;
    const open = (
      await arrange("d-open-window", {
        pickupWindow: { startTime: timestampFromMs(before - 3_600_000), endTime: timestampFromMs(before + DAY_MS) },
      })
    ).pickup!;
    const after = Date.now();

    const leadPickup = timestampMs(lead.pickupEta!);
    expect(leadPickup).toBeGreaterThanOrEqual(before + LEAD_MS);
    expect(leadPickup).toBeLessThanOrEqual(after + LEAD_MS);
    expect(timestampMs(lead.deliveryEta!) - leadPickup).toBeCloseTo(ONE_DEGREE_DRIVE_MS + HANDLING_MS, -1);

    const openPickup = timestampMs(open.pickupEta!);
    expect(openPickup).toBeGreaterThanOrEqual(before);
    expect(openPickup).toBeLessThanOrEqual(after);
  });

  it("answers the same booking, unchanged, when a delivery is arranged again", async () => {
    const first = await arrange("d-repeat");
    const second = await arrange("d-repeat", {
      packages: [parcel("other", { weightKg: 900 })],
      pickupWindow: { startTime: timestampFromMs(Date.now() + DAY_MS), endTime: timestampFromMs(Date.now() + 2 * DAY_MS) },
    });
    expect(second.pickup).toEqual(first.pickup);
    expect((await client.getPickup({ deliveryId: "d-repeat" })).pickup).toEqual(first.pickup);
    expect(await writes("d-repeat")).toBe(1);
  });

  it("keeps one booking and one tracking id when arranges race, across two instances", async () => {
    const other = await startTestService(thirdPartyModule, nats.url, { env: ENV });
    const otherClient = createClient(ThirdPartyTransportService, { address: other.address });
    try {
      const responses = await Promise.all(
        Array.from({ length: 10 }, (_, i) => arrange("d-race", {}, i % 2 === 0 ? client : otherClient)),
      );
      const { pickup } = await client.getPickup({ deliveryId: "d-race" });
      for (const r of responses) expect(r.pickup).toEqual(pickup);
      expect(new Set(responses.map((r) => r.pickup?.trackingId)).size).toBe(1);
      expect(await writes("d-race")).toBe(1);
    } finally {
      otherClient.close();
      await other.stop();
    }
  });

  it("refuses a booking whose hand-over would miss the deadline, and stores nothing", async () => {
    const error = await rpcError(arrange("d-late", { deadline: timestampFromMs(Date.now() + 30 * 60_000) }));
    expect(error.code).toBe(Code.FailedPrecondition);
    const [failure] = error.findDetails(PreconditionFailureSchema);
    expect(failure?.violations.map((v) => [v.type, v.subject])).toEqual([[DEADLINE_UNREACHABLE, "delivery:d-late"]]);
    expect((await rpcError(client.getPickup({ deliveryId: "d-late" }))).code).toBe(Code.NotFound);
  });

  it("answers NOT_FOUND for a delivery never arranged", async () => {
    const error = await rpcError(client.getPickup({ deliveryId: "d-unknown" }));
    expect(error.code).toBe(Code.NotFound);
  });
});

describe("cancel", () => {
  it("cancels an arranged booking once; repeats change nothing; arranging again is refused", async () => {
    const { pickup: arranged } = await arrange("d-cancel");
    const before = Date.now();
    const first = await client.cancelPickup({ deliveryId: "d-cancel", reason: "customer cancelled" });
    const after = Date.now();
    expect(first.cancelled).toBe(true);
    expect(first.pickup).toMatchObject({
      ...arranged,
      status: PickupStatus.CANCELLED,
      cancelReason: "customer cancelled",
      cancelTime: expect.anything(),
    });
    expect(timestampMs(first.pickup!.cancelTime!)).toBeGreaterThanOrEqual(before);
    expect(timestampMs(first.pickup!.cancelTime!)).toBeLessThanOrEqual(after);

    const again = await client.cancelPickup({ deliveryId: "d-cancel", reason: "another reason" });
    expect(again).toMatchObject({ cancelled: false, pickup: first.pickup });
    expect((await client.getPickup({ deliveryId: "d-cancel" })).pickup).toEqual(first.pickup);

    const refused = await rpcError(arrange("d-cancel"));
    expect(refused.code).toBe(Code.FailedPrecondition);
    const [failure] = refused.findDetails(PreconditionFailureSchema);
    expect(failure?.violations.map((v) => [v.type, v.subject])).toEqual([[PICKUP_CANCELLED, "delivery:d-cancel"]]);
    expect(await writes("d-cancel")).toBe(2);
  });

  it("answers OK without a booking for a delivery never arranged, and stores nothing", async () => {
    const response = await client.cancelPickup({ deliveryId: "d-never", reason: "" });
    expect(response.cancelled).toBe(false);
    expect(response.pickup).toBeUndefined();
    expect((await rpcError(client.getPickup({ deliveryId: "d-never" }))).code).toBe(Code.NotFound);
  });

  it("lets exactly one of several concurrent cancels cancel", async () => {
    await arrange("d-cancel-race");
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.cancelPickup({ deliveryId: "d-cancel-race", reason: `reason ${i}` })),
    );
    const { pickup } = await client.getPickup({ deliveryId: "d-cancel-race" });
    expect(responses.filter((r) => r.cancelled)).toHaveLength(1);
    for (const r of responses) expect(r.pickup).toEqual(pickup);
    expect(pickup?.status).toBe(PickupStatus.CANCELLED);
    expect(await writes("d-cancel-race")).toBe(2);
  });

  it("resolves a cancel racing the first arrange consistently: cancelled after booking, or before any", async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `d-first-race-${i}`);
    const outcomes = await Promise.all(
      ids.map(async (id) => {
        const [arranged, cancel] = await Promise.all([arrange(id), client.cancelPickup({ deliveryId: id, reason: "race" })]);
        return { id, arranged, cancel, stored: (await client.getPickup({ deliveryId: id })).pickup };
      }),
    );
    for (const { id, arranged, cancel, stored } of outcomes) {
      expect(arranged.pickup?.status).toBe(PickupStatus.ARRANGED);
      if (cancel.cancelled) {
        // The arrange came first; the cancel cancelled that very booking.
        expect(cancel.pickup).toEqual(stored);
        expect(stored).toMatchObject({
          ...arranged.pickup,
          status: PickupStatus.CANCELLED,
          cancelReason: "race",
          cancelTime: expect.anything(),
        });
        expect(await writes(id)).toBe(2);
      } else {
        // The cancel came first and found nothing; the booking stands.
        expect(cancel.pickup).toBeUndefined();
        expect(stored).toEqual(arranged.pickup);
        expect(await writes(id)).toBe(1);
      }
    }
  });

  it("resolves a cancel racing repeated arranges of a booking: one cancel, one tracking id", async () => {
    const { pickup: original } = await arrange("d-mixed-race");
    const [cancels, arranges] = await Promise.all([
      Promise.all(["first", "second"].map((reason) => client.cancelPickup({ deliveryId: "d-mixed-race", reason }))),
      Promise.all(Array.from({ length: 6 }, () => settle(arrange("d-mixed-race")))),
    ]);
    const { pickup: stored } = await client.getPickup({ deliveryId: "d-mixed-race" });
    expect(stored).toMatchObject({
      ...original,
      status: PickupStatus.CANCELLED,
      cancelTime: expect.anything(),
      cancelReason: expect.any(String),
    });
    expect(["first", "second"]).toContain(stored?.cancelReason);
    expect(cancels.filter((c) => c.cancelled)).toHaveLength(1);
    for (const c of cancels) expect(c.pickup).toEqual(stored);
    for (const call of arranges) {
      if ("ok" in call) expect(call.ok.pickup).toEqual(original);
      else expect(call.code).toBe(Code.FailedPrecondition);
    }
    expect(await writes("d-mixed-race")).toBe(2);
  });
});

describe("bad input", () => {
  it("names every bad field of an arrange", async () => {
    const now = Date.now();
    const error = await rpcError(
      client.arrangePickup({
        deliveryId: "has.dot",
        ownerId: "",
        pickup: { latitude: 91, longitude: -181, altitude: 0 },
        dropoff: { latitude: Number.NaN, longitude: 0, altitude: -1 },
        packages: [
          parcel("p-1"),
          parcel("p-1", { size: 42 as PackageSize, weightKg: 0, tag: "t".repeat(257) }),
          parcel("", { size: PackageSize.UNSPECIFIED, weightKg: 1001 }),
          parcel("bad id", { weightKg: -3 }),
        ],
        pickupWindow: { startTime: timestampFromMs(now + 2 * DAY_MS), endTime: timestampFromMs(now + DAY_MS) },
        deadline: timestampFromMs(now - 60_000),
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(error).map((v) => v.field)).toEqual([
      "delivery_id",
      "owner_id",
      "pickup.latitude",
      "pickup.longitude",
      "dropoff.latitude",
      "dropoff.altitude",
      "packages",
      "packages[1].size",
      "packages[1].weight_kg",
      "packages[1].tag",
      "packages[2].package_id",
      "packages[2].size",
      "packages[2].weight_kg",
      "packages[3].package_id",
      "packages[3].weight_kg",
      "pickup_window.end_time",
      "deadline",
    ]);
    // Distinct package ids are a rule of the list, reported on it.
    expect(fieldViolations(error).find((v) => v.field === "packages")?.description).toBe("must not repeat a package_id");
    expect(fieldViolations(error).find((v) => v.field === "pickup_window.end_time")?.description).toBe("must not be before start_time");
    expect((await rpcError(client.getPickup({ deliveryId: "has.dot" }))).code).toBe(Code.InvalidArgument);
  });

  it("names the missing parts of an empty arrange and of a half window", async () => {
    const empty = await rpcError(client.arrangePickup({}));
    expect(fieldViolations(empty)).toEqual([
      { field: "delivery_id", description: "value is required" },
      { field: "owner_id", description: "value is required" },
      { field: "pickup", description: "value is required" },
      { field: "dropoff", description: "value is required" },
      { field: "packages", description: "must contain at least 1 item(s)" },
    ]);

    const halfWindow = await rpcError(arrange("d-half", { pickupWindow: { endTime: timestampFromMs(Date.now() - 1000) } }));
    expect(fieldViolations(halfWindow)).toEqual([
      { field: "pickup_window.start_time", description: "value is required" },
      { field: "pickup_window.end_time", description: "must lie in the future" },
    ]);

    const badTime = await rpcError(
      arrange("d-bad-time", { deadline: { seconds: 253402300800n, nanos: 0 } }),
    );
    expect(fieldViolations(badTime)).toEqual([{ field: "deadline", description: "is not a valid timestamp" }]);
    expect((await rpcError(client.getPickup({ deliveryId: "d-half" }))).code).toBe(Code.NotFound);
  });

  it("names the bad fields of a cancel and a get", async () => {
    const cancel = await rpcError(client.cancelPickup({ deliveryId: "x".repeat(129), reason: "r".repeat(1025) }));
    expect(cancel.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(cancel).map((v) => v.field)).toEqual(["delivery_id", "reason"]);

    const get = await rpcError(client.getPickup({ deliveryId: "" }));
    expect(fieldViolations(get)).toEqual([{ field: "delivery_id", description: "value is required" }]);
  });
});

describe("service", () => {
  it("reports SERVING and describes itself by reflection", async () => {
    const name = "dronedelivery.thirdparty.v1.ThirdPartyTransportService";
    expect(await healthStatus(service.address)).toBe("SERVING");
    expect(await healthStatus(service.address, name)).toBe("SERVING");
    expect(await reflectionServices(service.address)).toContain(name);
    const files = await reflectionFilesFor(service.address, name);
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining(["dronedelivery/thirdparty/v1/thirdparty_service.proto", "dronedelivery/common/v1/package_info.proto"]),
    );
  });

  it("keeps its bookings across a restart", async () => {
    const { pickup: kept } = await arrange("d-durable");
    await arrange("d-durable-cancelled");
    const { pickup: cancelled } = await client.cancelPickup({ deliveryId: "d-durable-cancelled", reason: "gone" });
    const port = service.port;
    client.close();
    await service.stop();
    service = await startTestService(thirdPartyModule, nats.url, { port, env: ENV });
    client = createClient(ThirdPartyTransportService, { address: service.address });

    expect((await client.getPickup({ deliveryId: "d-durable" })).pickup).toEqual(kept);
    expect((await arrange("d-durable")).pickup).toEqual(kept);
    expect((await client.getPickup({ deliveryId: "d-durable-cancelled" })).pickup).toEqual(cancelled);
    expect((await rpcError(arrange("d-durable-cancelled"))).code).toBe(Code.FailedPrecondition);
  });
});
