// The permission table against a real nats-server with authorization: each service identity can
// do on NATS what its code does (publish its own events through JetStream, keep its KV buckets,
// run its durable and ordered consumers, read the streams it reads), and is refused everything
// that belongs to another service.
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg, type NatsConnection, type NatsError } from "nats";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryStatusEventSchema } from "../../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import { DroneLocationEventSchema } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import {
  CancelDeliveryCommandSchema,
  RescheduleDeliveryCommandSchema,
  ScheduleDeliveryCommandSchema,
} from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { CarrierStage, CarrierStatusEventSchema } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_events_pb.js";
import { WorkflowFailedEventSchema } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { ACCOUNTS_BUCKET } from "../../services/account/store.js";
import { HISTORY_BUCKET } from "../../services/delivery/history.js";
import { DELIVERIES_BUCKET } from "../../services/delivery/store.js";
import { DRONES_BUCKET } from "../../services/drone/store.js";
import { PACKAGES_BUCKET } from "../../services/package/store.js";
import { WORKFLOWS_BUCKET } from "../../services/scheduler/workflow-store.js";
import { COMPENSATIONS_BUCKET } from "../../services/supervisor/compensation-store.js";
import { PICKUPS_BUCKET } from "../../services/thirdparty/store.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import type { ServiceName } from "../service/ports.js";
import { connectNats, drainQuietly } from "./connection.js";
import { openBucket } from "./kv.js";
import { decodeMessage, publishMessage } from "./messages.js";
import { SERVICE_NATS_IDENTITIES, type NatsIdentity } from "./permissions.js";
import { ensureStreams, STREAMS, subjects, type StreamName } from "./streams.js";
import { ack, ensureWorkConsumer, retry, startWorkConsumer, type WorkOutcome } from "./work-consumer.js";

const log = pino({ level: "silent" });
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | undefined) => new TextDecoder().decode(data);

/** What each service's code publishes, one sample per subject kind. */
interface Sample<Desc extends DescMessage = DescMessage> {
  readonly stream: StreamName;
  readonly subject: string;
  readonly schema: Desc;
  readonly message: MessageShape<Desc>;
}
function sample<Desc extends DescMessage>(stream: StreamName, subject: string, schema: Desc, init: Record<string, unknown>): Sample {
  return { stream, subject, schema, message: create(schema, init as never) } as Sample;
}
const SAMPLES = {
  location: sample("DRONE_TELEMETRY", subjects.droneLocation("drone-auth"), DroneLocationEventSchema, { droneId: "drone-auth", deliveryId: "d-auth", sequence: 1n }),
  status: sample("DELIVERY_STATUS", subjects.deliveryStatus("d-auth"), DeliveryStatusEventSchema, { deliveryId: "d-auth", stage: DeliveryStage.CREATED }),
  schedule: sample("DELIVERY_REQUESTS", subjects.scheduleRequest("d-auth"), ScheduleDeliveryCommandSchema, { deliveryId: "d-auth", ownerId: "acct-1" }),
  reschedule: sample("DELIVERY_REQUESTS", subjects.rescheduleRequest("d-auth"), RescheduleDeliveryCommandSchema, { deliveryId: "d-auth" }),
  cancel: sample("DELIVERY_REQUESTS", subjects.cancelRequest("d-auth"), CancelDeliveryCommandSchema, { deliveryId: "d-auth" }),
  failure: sample("WORKFLOW_FAILURES", subjects.workflowFailed("d-auth"), WorkflowFailedEventSchema, { deliveryId: "d-auth", reason: "test" }),
  carrier: sample("CARRIER_STATUS", subjects.carrierStatus("d-auth"), CarrierStatusEventSchema, { deliveryId: "d-auth", trackingId: "CF-1", stage: CarrierStage.BOOKED, sequence: 1n }),
} as const;

/** From the services' code: what each publishes (the Supervisor's stale sweep publishes failures too). */
const PUBLISHES_IN_CODE: Record<ServiceName, Sample[]> = {
  account: [],
  package: [],
  drone: [SAMPLES.location],
  thirdparty: [SAMPLES.carrier],
  delivery: [SAMPLES.status],
  ingestion: [SAMPLES.schedule, SAMPLES.reschedule, SAMPLES.cancel],
  scheduler: [SAMPLES.failure],
  supervisor: [SAMPLES.failure],
};

/** From the services' stores: the buckets each opens. */
const BUCKETS_IN_CODE: Record<ServiceName, string[]> = {
  account: [ACCOUNTS_BUCKET],
  package: [PACKAGES_BUCKET],
  drone: [DRONES_BUCKET],
  thirdparty: [PICKUPS_BUCKET],
  delivery: [DELIVERIES_BUCKET, HISTORY_BUCKET],
  ingestion: [],
  scheduler: [WORKFLOWS_BUCKET],
  supervisor: [WORKFLOWS_BUCKET, COMPENSATIONS_BUCKET],
};
const ALL_BUCKETS = [...new Set(Object.values(BUCKETS_IN_CODE).flat())];

let nats: TestNatsServer;
let admin: NatsConnection;
let adminJsm: JetStreamManager;
const connections = new Map<NatsIdentity, NatsConnection>();

function nc(identity: NatsIdentity): NatsConnection {
  const found = connections.get(identity);
  if (!found) throw new Error(`no connection as ${identity}`);
  return found;
}
const js = (identity: NatsIdentity): JetStreamClient => nc(identity).jetstream();
const jsm = (identity: NatsIdentity): Promise<JetStreamManager> => nc(identity).jetstreamManager();

/** The NATS error code of an error, or of the error it wraps. */
function codeOf(error: unknown): string {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = (e as NatsError).code;
    if (code) return code;
  }
  return String(error);
}

/** Passes when `work` is refused for lack of permission; fails the test otherwise. */
async function refused(work: Promise<unknown>): Promise<void> {
  const outcome = await work.then(() => "allowed", codeOf);
  expect(outcome).toBe("PERMISSIONS_VIOLATION");
}

/** Whether the server refused a subscription to `subject` (it closes the subscription before the flush returns). */
async function subscriptionRefused(conn: NatsConnection, subject: string): Promise<boolean> {
  const sub = conn.subscribe(subject);
  const ended = (async () => {
    try {
      for await (const _ of sub) {
        // Nothing is published here.
      }
      return "closed";
    } catch (error) {
      return (error as NatsError).code;
    }
  })();
  await conn.flush();
  if (!sub.isClosed()) {
    sub.unsubscribe();
    await ended;
    return false;
  }
  expect(await ended).toBe("PERMISSIONS_VIOLATION");
  return true;
}

async function messageCount(stream: string): Promise<number> {
  return (await adminJsm.streams.info(stream)).state.messages;
}

beforeAll(async () => {
  nats = await startNatsServer({ auth: true });
  admin = await nats.connectAs("admin");
  adminJsm = await admin.jetstreamManager();
  // Stream setup is admin's (scripts/run.ts); the services only look at the streams.
  await ensureStreams(adminJsm);
  for (const identity of SERVICE_NATS_IDENTITIES) connections.set(identity, await nats.connectAs(identity));
});

afterAll(async () => {
  for (const conn of connections.values()) await drainQuietly(conn);
  await drainQuietly(admin);
  await nats?.stop();
});

describe("NATS credentials", () => {
  it("refuses a wrong password, another identity's password and no credentials", async () => {
    const attempt = (options: { user?: string; pass?: string }) =>
      connectNats({ url: nats.url, name: "intruder", reconnect: false, ...options }).then(
        async (conn) => {
          await conn.close();
          return "connected";
        },
        (error: unknown) => (error as NatsError).code,
      );
    expect(await attempt({ user: "drone", pass: "wrong" })).toBe("AUTHORIZATION_VIOLATION");
    expect(await attempt({ user: "drone", pass: nats.credentials("scheduler")?.pass ?? "" })).toBe("AUTHORIZATION_VIOLATION");
    expect(await attempt({})).toBe("AUTHORIZATION_VIOLATION");
    expect(await attempt({ ...nats.credentials("drone") })).toBe("connected");
  });

  it("lets every service look at the streams, as ensureStreams does when a service starts", async () => {
    for (const identity of SERVICE_NATS_IDENTITIES) {
      const results = await ensureStreams(await jsm(identity));
      expect(results.map((r) => r.action), identity).toEqual(results.map(() => "unchanged"));
    }
  });

  it("needs the identity's inbox prefix: a service connection without it cannot make requests", async () => {
    const bare = await connectNats({ url: nats.url, name: "no-prefix", reconnect: false, ...nats.credentials("account") });
    try {
      await refused(bare.jetstreamManager());
    } finally {
      await bare.close();
    }
  });
});

describe("publishing", () => {
  it("lets each service publish its own events and commands through JetStream", async () => {
    for (const identity of SERVICE_NATS_IDENTITIES) {
      for (const [i, s] of PUBLISHES_IN_CODE[identity].entries()) {
        const ack = await publishMessage(js(identity), s.subject, s.schema, s.message, { expectStream: s.stream, msgId: `${identity}-${i}` });
        expect(ack.stream, `${identity} on ${s.subject}`).toBe(s.stream);
      }
    }
  });

  it("refuses publishing another service's subjects, and stores nothing", async () => {
    const streams = Object.keys(STREAMS) as StreamName[];
    const before = new Map(await Promise.all(streams.map(async (s) => [s, await messageCount(s)] as const)));
    let refusals = 0;
    for (const identity of SERVICE_NATS_IDENTITIES) {
      const own = new Set(PUBLISHES_IN_CODE[identity].map((s) => s.stream));
      for (const s of Object.values(SAMPLES)) {
        if (own.has(s.stream)) continue;
        await refused(publishMessage(js(identity), s.subject, s.schema, s.message));
        refusals++;
      }
    }
    expect(refusals).toBeGreaterThan(30);
    for (const s of streams) expect(await messageCount(s), s).toBe(before.get(s));
  });

  it("refuses a scheduler publishing a drone location event by name", async () => {
    const error = await publishMessage(js("scheduler"), subjects.droneLocation("drone-1"), DroneLocationEventSchema, create(DroneLocationEventSchema, { droneId: "drone-1" })).then(
      () => undefined,
      (e: unknown) => e as NatsError,
    );
    expect(error?.code).toBe("PERMISSIONS_VIOLATION");
    expect(error?.message).toContain('Publish to "drone.drone-1.location"');
  });
});

describe("KV buckets", () => {
  beforeAll(async () => {
    for (const bucket of ALL_BUCKETS) await openBucket(admin.jetstream(), bucket);
  });

  it("lets each service create, read, write, list, watch and delete in its own buckets", async () => {
    for (const identity of SERVICE_NATS_IDENTITIES) {
      for (const bucket of BUCKETS_IN_CODE[identity]) {
        const where = `${identity} in ${bucket}`;
        const kv = await openBucket(js(identity), bucket, { description: `${bucket} (auth test)` });
        const key = `k-${identity}`;
        const r1 = await kv.create(key, bytes("one"));
        const r2 = await kv.update(key, bytes("two"), r1);
        await kv.put(`${key}-other`, bytes("x"));
        expect(text((await kv.get(key))?.value), where).toBe("two");
        const keys: string[] = [];
        for await (const k of await kv.keys()) keys.push(k);
        expect(keys.filter((k) => k.startsWith(key)).sort(), where).toEqual([key, `${key}-other`]);
        const history: string[] = [];
        for await (const e of await kv.history({ key })) history.push(text(e.value));
        expect(history, where).toEqual(["one", "two"]);
        const watch = await kv.watch({ key });
        for await (const e of watch) {
          expect(text(e.value), where).toBe("two");
          break;
        }
        await kv.delete(key, { previousSeq: r2 });
        expect((await kv.get(key))?.operation, where).toBe("DEL");
      }
    }
    // A bucket of its own may be created by its service on a fresh server.
    await adminJsm.streams.delete(`KV_${PICKUPS_BUCKET}`);
    await openBucket(js("thirdparty"), PICKUPS_BUCKET);
  });

  it("refuses writing or reading another service's bucket, and creating a bucket of no service", async () => {
    let refusals = 0;
    for (const identity of SERVICE_NATS_IDENTITIES) {
      for (const bucket of ALL_BUCKETS.filter((b) => !BUCKETS_IN_CODE[identity].includes(b))) {
        await refused(openBucket(js(identity), bucket, { bindOnly: true }));
        await refused(js(identity).publish(`$KV.${bucket}.k-${identity}`, bytes("stolen")));
        await refused(nc(identity).request(`$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.k`, undefined, { timeout: 5_000 }));
        await refused((async () => (await jsm(identity)).streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.k` }))());
        refusals++;
      }
      await refused(openBucket(js(identity), `stray-${identity}`));
    }
    expect(refusals).toBeGreaterThan(40);
  });

  it("answers flow control on a large watch (push consumers of the bucket's stream)", async () => {
    const kv = await openBucket(js("drone"), DRONES_BUCKET);
    const big = new Uint8Array(900 * 1024);
    for (let i = 0; i < 24; i++) await kv.put(`big.${i}`, big);
    let seen = 0;
    const watch = await kv.watch({ key: "big.>" });
    for await (const e of watch) {
      expect(e.value.length).toBe(big.length);
      if (++seen === 24) break;
    }
    for (let i = 0; i < 24; i++) await kv.purge(`big.${i}`);
    expect(nats.logTail(1_000)).not.toMatch(/Violation.*\$JS\.FC/);
  });
});

describe("consumers", () => {
  /**
   * Runs a durable work consumer as `identity` that retries the message on `subject` once and then
   * acks it (and acks anything else at once); returns the deliveries of that message.
   */
  async function work(identity: NatsIdentity, stream: StreamName, durable: string, subject: string, publish: () => Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    const consumer = await startWorkConsumer(js(identity), await jsm(identity), {
      stream: STREAMS[stream].name,
      durable,
      maxDeliver: 5,
      ackWaitMs: 30_000,
      concurrency: 2,
      errorDelayMs: 10,
      log,
      async handle(msg: JsMsg): Promise<WorkOutcome> {
        if (msg.subject !== subject) return ack;
        seen.push(`${msg.subject}#${msg.info.redeliveryCount}`);
        return seen.length === 1 ? retry(10, "once more") : ack;
      },
    });
    try {
      await publish();
      await vi.waitFor(() => expect(seen.length).toBe(2), { timeout: 10_000, interval: 20 });
    } finally {
      await consumer.stop();
    }
    return seen;
  }

  it("lets the Scheduler take delivery requests from Ingestion: durable consumer, nak, ack", async () => {
    const subject = subjects.scheduleRequest("d-work");
    const seen = await work("scheduler", "DELIVERY_REQUESTS", "scheduler", subject, () =>
      publishMessage(js("ingestion"), subject, ScheduleDeliveryCommandSchema, create(ScheduleDeliveryCommandSchema, { deliveryId: "d-work" }), {
        msgId: "d-work",
      }),
    );
    expect(seen).toEqual([`${subject}#1`, `${subject}#2`]);
  });

  it("lets the Supervisor take workflow failures", async () => {
    const subject = subjects.workflowFailed("d-work");
    const seen = await work("supervisor", "WORKFLOW_FAILURES", "supervisor", subject, () =>
      publishMessage(js("scheduler"), subject, WorkflowFailedEventSchema, create(WorkflowFailedEventSchema, { deliveryId: "d-work" }), {
        msgId: "d-work-failed",
      }),
    );
    expect(seen).toEqual([`${subject}#1`, `${subject}#2`]);
  });

  it("lets Delivery take carrier status events from the Third-party service", async () => {
    const subject = subjects.carrierStatus("d-carrier");
    const seen = await work("delivery", "CARRIER_STATUS", "delivery-carrier-status", subject, () =>
      publishMessage(js("thirdparty"), subject, CarrierStatusEventSchema, create(CarrierStatusEventSchema, { deliveryId: "d-carrier", stage: CarrierStage.PICKED_UP, sequence: 3n }), {
        msgId: "d-carrier:PICKED_UP",
      }),
    );
    expect(seen).toEqual([`${subject}#1`, `${subject}#2`]);
    await refused((async () => (await jsm("drone")).consumers.add("CARRIER_STATUS", { durable_name: "drone-steals" }))());
  });

  it("lets Delivery consume drone telemetry and status events, follow a delivery, and read its last status", async () => {
    const deliveryJs = js("delivery");
    const deliveryJsm = await jsm("delivery");
    for (const [stream, durable] of [
      ["DRONE_TELEMETRY", "delivery-telemetry"],
      ["DELIVERY_STATUS", "delivery-history"],
    ] as const) {
      await ensureWorkConsumer(deliveryJsm, { stream, durable, deliverPolicy: DeliverPolicy.New, maxDeliver: 5, ackWaitMs: 30_000, concurrency: 4 });
      expect((await (await deliveryJs.consumers.get(stream, durable)).info(true)).name).toBe(durable);
    }
    const telemetry = await deliveryJs.consumers.get("DRONE_TELEMETRY", "delivery-telemetry");
    await publishMessage(js("drone"), subjects.droneLocation("drone-c"), DroneLocationEventSchema, create(DroneLocationEventSchema, { droneId: "drone-c", sequence: 7n }));
    const taken = await telemetry.next({ expires: 5_000 });
    expect(taken && decodeMessage(taken, DroneLocationEventSchema).sequence).toBe(7n);
    expect(await taken?.ackAck()).toBe(true);

    const status = create(DeliveryStatusEventSchema, { deliveryId: "d-follow", stage: DeliveryStage.HEADED_TO_PICKUP });
    await publishMessage(deliveryJs, subjects.deliveryStatus("d-follow"), DeliveryStatusEventSchema, status);
    const follow = await deliveryJs.consumers.get("DELIVERY_STATUS", { filterSubjects: subjects.deliveryStatus("d-follow") });
    const followed = await follow.next({ expires: 5_000 });
    expect(followed && decodeMessage(followed, DeliveryStatusEventSchema).stage).toBe(DeliveryStage.HEADED_TO_PICKUP);
    await follow.delete();
    const last = await deliveryJsm.streams.getMessage("DELIVERY_STATUS", { last_by_subj: subjects.deliveryStatus("d-follow") });
    expect(decodeMessage(last, DeliveryStatusEventSchema).deliveryId).toBe("d-follow");

    // WatchDelivery follows a drone's positions as plain messages.
    const positions = nc("delivery").subscribe(subjects.droneLocation("drone-c"), { max: 1 });
    await nc("delivery").flush();
    await publishMessage(js("drone"), subjects.droneLocation("drone-c"), DroneLocationEventSchema, create(DroneLocationEventSchema, { droneId: "drone-c", sequence: 8n }));
    for await (const m of positions) expect(decodeMessage(m, DroneLocationEventSchema).sequence).toBe(8n);
  });

  it("refuses consumers, reads and acks on streams a service does not consume, and stream deletion to all", async () => {
    await refused((async () => (await jsm("drone")).consumers.add("DELIVERY_REQUESTS", { durable_name: "drone-steals" }))());
    await refused(js("account").consumers.get("DRONE_TELEMETRY", "delivery-telemetry"));
    const statusFilter = { name: "ingestion-reads", filter_subject: "delivery.*.status" };
    await refused((async () => (await jsm("ingestion")).consumers.add("DELIVERY_STATUS", statusFilter))());
    await refused((async () => (await jsm("scheduler")).streams.getMessage("DELIVERY_STATUS", { last_by_subj: subjects.deliveryStatus("d-follow") }))());
    await refused((async () => (await jsm("delivery")).consumers.add("WORKFLOW_FAILURES", { durable_name: "delivery-steals" }))());
    await refused((async () => (await jsm("scheduler")).consumers.delete("WORKFLOW_FAILURES", "supervisor"))());
    await refused((async () => (await jsm("supervisor")).consumers.delete("DELIVERY_REQUESTS", "scheduler"))());
    await refused(nc("scheduler").request("$JS.ACK.WORKFLOW_FAILURES.supervisor.1.1.1.0.0", bytes("+ACK"), { timeout: 5_000 }));
    await refused((async () => (await jsm("delivery")).streams.delete("DELIVERY_STATUS"))());
    await refused((async () => (await jsm("drone")).streams.purge("DRONE_TELEMETRY"))());
    await refused((async () => (await jsm("drone")).streams.update("DELIVERY_STATUS", { description: "taken over" }))());
    expect(await messageCount("DELIVERY_STATUS")).toBeGreaterThan(0);
  });
});

describe("subscriptions", () => {
  it("keeps each service to its own inbox and the plain subjects it listens to", async () => {
    expect(await subscriptionRefused(nc("scheduler"), "_INBOX.>")).toBe(true);
    expect(await subscriptionRefused(nc("scheduler"), "_INBOX.delivery.>")).toBe(true);
    expect(await subscriptionRefused(nc("scheduler"), "_INBOX.scheduler.mine")).toBe(false);
    expect(await subscriptionRefused(nc("scheduler"), "drone.*.location")).toBe(true);
    expect(await subscriptionRefused(nc("account"), "delivery.request.>")).toBe(true);
    expect(await subscriptionRefused(nc("delivery"), "drone.*.location")).toBe(false);
    expect(await subscriptionRefused(nc("drone"), "drone.*.location")).toBe(false); // WatchFleet
    expect(await subscriptionRefused(nc("drone"), "delivery.*.status")).toBe(true);
    expect(await subscriptionRefused(admin, ">")).toBe(false);
  });
});
