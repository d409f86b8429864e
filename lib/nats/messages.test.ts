import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AckPolicy, DeliverPolicy, headers, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocationSchema } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DroneLocationEventSchema } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { ScheduleDeliveryCommandSchema } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { connectNats, drainQuietly } from "./connection.js";
import { decodeMessage, MESSAGE_TYPE_HEADER, MessageDecodeError, messageTypeOf, publishMessage } from "./messages.js";
import { ensureStreams, STREAMS, subjects } from "./streams.js";

function locationEvent(droneId: string, sequence: bigint) {
  return create(DroneLocationEventSchema, {
    droneId,
    deliveryId: "d-100",
    position: create(LocationSchema, { latitude: 47.6062, longitude: -122.3321, altitude: 120 }),
    stage: FlightStage.HEADED_TO_PICKUP,
    batteryPercent: 87.5,
    eventTime: timestampFromDate(new Date("2026-01-02T03:04:05.678Z")),
    speedMps: 14.2,
    sequence,
  });
}

function scheduleCommand(deliveryId: string, idempotencyKey: string) {
  return create(ScheduleDeliveryCommandSchema, {
    deliveryId,
    ownerId: "acct-1",
    pickup: { latitude: 47.6, longitude: -122.3, altitude: 0 },
    dropoff: { latitude: 47.7, longitude: -122.2, altitude: 0 },
    packages: [{ packageId: "p-1", size: PackageSize.SMALL, weightKg: 1.5, tag: "books" }],
    idempotencyKey,
  });
}

describe("protobuf messages on JetStream", () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: "messages-test" });
    jsm = await nc.jetstreamManager();
    js = nc.jetstream();
    await ensureStreams(jsm);
  });

  afterAll(async () => {
    await drainQuietly(nc);
    await server?.stop();
  });

  it("publishes a DroneLocationEvent and reads it back with an ordered consumer", async () => {
    const sent = locationEvent("drone-7", 42n);
    const ack = await publishMessage(js, subjects.droneLocation("drone-7"), DroneLocationEventSchema, sent, {
      expectStream: STREAMS.DRONE_TELEMETRY.name,
    });
    expect(ack.stream).toBe("DRONE_TELEMETRY");
    expect(ack.duplicate).toBe(false);

    const consumer = await js.consumers.get("DRONE_TELEMETRY", { filterSubjects: subjects.droneLocation("drone-7") });
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg).not.toBeNull();
    if (!msg) return;
    expect(msg.subject).toBe("drone.drone-7.location");
    expect(msg.headers?.get(MESSAGE_TYPE_HEADER)).toBe("dronedelivery.drone.v1.DroneLocationEvent");
    expect(messageTypeOf(msg)).toBe(DroneLocationEventSchema.typeName);

    const received = decodeMessage(msg, DroneLocationEventSchema);
    expect(received.droneId).toBe("drone-7");
    expect(received.sequence).toBe(42n);
    expect(received.stage).toBe(FlightStage.HEADED_TO_PICKUP);
    expect(received.position?.latitude).toBeCloseTo(47.6062);
    expect(received.eventTime?.nanos).toBe(678_000_000);
    expect(toBinary(DroneLocationEventSchema, received)).toEqual(toBinary(DroneLocationEventSchema, sent));
  });

  it("delivers to a durable explicit-ack consumer, and reads stored messages directly", async () => {
    await publishMessage(js, subjects.droneLocation("drone-8"), DroneLocationEventSchema, locationEvent("drone-8", 1n));
    await publishMessage(js, subjects.droneLocation("drone-8"), DroneLocationEventSchema, locationEvent("drone-8", 2n));
    await jsm.consumers.add("DRONE_TELEMETRY", {
      durable_name: "delivery-tracker-test",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: "drone.drone-8.location",
      max_deliver: 5,
    });
    const consumer = await js.consumers.get("DRONE_TELEMETRY", "delivery-tracker-test");
    const sequences: bigint[] = [];
    const batch = await consumer.fetch({ max_messages: 2, expires: 5_000 });
    for await (const m of batch) {
      sequences.push(decodeMessage(m, DroneLocationEventSchema).sequence);
      m.ack();
    }
    expect(sequences).toEqual([1n, 2n]);

    const stored = await jsm.streams.getMessage("DRONE_TELEMETRY", { last_by_subj: "drone.drone-8.location" });
    expect(decodeMessage(stored, DroneLocationEventSchema).sequence).toBe(2n);
  });

  it("stores a command once when it is published twice with the same Nats-Msg-Id", async () => {
    const subject = subjects.scheduleRequest("d-dup-1");
    const command = scheduleCommand("d-dup-1", "idem-key-1");
    const first = await publishMessage(js, subject, ScheduleDeliveryCommandSchema, command, { msgId: "idem-key-1" });
    const second = await publishMessage(js, subject, ScheduleDeliveryCommandSchema, command, { msgId: "idem-key-1" });
    expect(first.stream).toBe("DELIVERY_REQUESTS");
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    expect(second.seq).toBe(first.seq);

    const other = await publishMessage(js, subject, ScheduleDeliveryCommandSchema, command, { msgId: "idem-key-2" });
    expect(other.duplicate).toBe(false);

    const info = await jsm.streams.info("DELIVERY_REQUESTS", { subjects_filter: subject });
    expect(info.state.subjects?.[subject]).toBe(2);

    // Work-queue streams need explicit-ack consumers (as the scheduler's); an ack removes the message.
    await jsm.consumers.add("DELIVERY_REQUESTS", {
      durable_name: "scheduler-test",
      ack_policy: AckPolicy.Explicit,
      filter_subject: subject,
    });
    const consumer = await js.consumers.get("DELIVERY_REQUESTS", "scheduler-test");
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg?.headers?.get("Nats-Msg-Id")).toBe("idem-key-1");
    expect(msg && decodeMessage(msg, ScheduleDeliveryCommandSchema).packages[0]?.tag).toBe("books");
    await msg?.ackAck();
    const after = await jsm.streams.info("DELIVERY_REQUESTS", { subjects_filter: subject });
    expect(after.state.subjects?.[subject]).toBe(1);
  });

  it("passes extra headers through", async () => {
    const extra = headers();
    extra.set("X-Test", "one");
    await publishMessage(js, subjects.droneLocation("drone-9"), DroneLocationEventSchema, locationEvent("drone-9", 1n), {
      headers: extra,
    });
    await publishMessage(js, subjects.droneLocation("drone-9"), DroneLocationEventSchema, locationEvent("drone-9", 2n), {
      headers: { "X-Test": "two" },
    });
    const consumer = await js.consumers.get("DRONE_TELEMETRY", { filterSubjects: "drone.drone-9.location" });
    const values: string[] = [];
    const batch = await consumer.fetch({ max_messages: 2, expires: 5_000 });
    for await (const m of batch) values.push(m.headers?.get("X-Test") ?? "");
    expect(values).toEqual(["one", "two"]);
  });

  it("refuses to decode a message of another type, without a type, or with a bad payload", () => {
    const typed = headers();
    typed.set(MESSAGE_TYPE_HEADER, DroneLocationEventSchema.typeName);
    const payload = toBinary(DroneLocationEventSchema, locationEvent("drone-1", 1n));

    expect(() => decodeMessage({ subject: "drone.drone-1.location", data: payload, headers: typed }, ScheduleDeliveryCommandSchema)).toThrow(
      /drone\.drone-1\.location is a dronedelivery\.drone\.v1\.DroneLocationEvent, expected dronedelivery\.ingestion\.v1\.ScheduleDeliveryCommand/,
    );
    expect(() => decodeMessage({ data: payload }, DroneLocationEventSchema)).toThrow(/no Dd-Message-Type header/);

    let caught: unknown;
    try {
      decodeMessage({ data: new Uint8Array([0xff, 0xff, 0xff]), headers: typed }, DroneLocationEventSchema);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MessageDecodeError);
    expect((caught as MessageDecodeError).message).toMatch(/not a valid dronedelivery\.drone\.v1\.DroneLocationEvent/);
  });

  it("fails to publish on a subject no stream stores", async () => {
    await expect(
      publishMessage(js, "delivery.request.unknown.d-1", ScheduleDeliveryCommandSchema, scheduleCommand("d-1", "k"), {
        timeoutMs: 2_000,
      }),
    ).rejects.toThrow();
  });
});
