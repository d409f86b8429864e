import { nanos, RetentionPolicy, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { connectNats, drainQuietly } from "./connection.js";
import { natsReplicasFromEnv } from "./replicas.js";
import { assertSubjectToken, ensureStreams, STREAM_DEFINITIONS, STREAMS, subjects, type StreamDefinition } from "./streams.js";

describe("subjects", () => {
  it("builds the platform's subjects", () => {
    expect(subjects.scheduleRequest("d-1")).toBe("delivery.request.schedule.d-1");
    expect(subjects.rescheduleRequest("d-1")).toBe("delivery.request.reschedule.d-1");
    expect(subjects.cancelRequest("d-1")).toBe("delivery.request.cancel.d-1");
    expect(subjects.workflowFailed("d-1")).toBe("workflow.failed.d-1");
    expect(subjects.droneLocation("drone_7")).toBe("drone.drone_7.location");
    expect(subjects.deliveryStatus("d-1")).toBe("delivery.d-1.status");
  });

  it.each(["", "a.b", "a*", ">", "a b", "tab\there", "new\nline"])("refuses the id %j", (id) => {
    expect(() => subjects.deliveryStatus(id)).toThrow(/NATS subject token/);
    expect(() => assertSubjectToken(id)).toThrow(TypeError);
  });

  it("keeps every subject in exactly one stream", () => {
    const samples = [
      [subjects.scheduleRequest("x"), "DELIVERY_REQUESTS"],
      [subjects.rescheduleRequest("x"), "DELIVERY_REQUESTS"],
      [subjects.cancelRequest("x"), "DELIVERY_REQUESTS"],
      [subjects.workflowFailed("x"), "WORKFLOW_FAILURES"],
      [subjects.droneLocation("x"), "DRONE_TELEMETRY"],
      [subjects.deliveryStatus("x"), "DELIVERY_STATUS"],
      // `delivery.request.>` would match this one too; JetStream refuses such overlapping streams.
      [subjects.deliveryStatus("request"), "DELIVERY_STATUS"],
      [subjects.carrierStatus("x"), "CARRIER_STATUS"],
    ] as const;
    const matches = (pattern: string, subject: string): boolean => {
      const p = pattern.split(".");
      const s = subject.split(".");
      for (let i = 0; i < p.length; i++) {
        if (p[i] === ">") return s.length > i;
        if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
      }
      return p.length === s.length;
    };
    for (const [subject, stream] of samples) {
      const owners = STREAM_DEFINITIONS.filter((d) => d.subjects.some((p) => matches(p, subject))).map((d) => d.name);
      expect(owners, subject).toEqual([stream]);
    }
  });
});

describe("ensureStreams", () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: "streams-test" });
    jsm = await nc.jetstreamManager();
  });

  afterAll(async () => {
    await drainQuietly(nc);
    await server?.stop();
  });

  it("creates the streams as defined, then leaves them unchanged", async () => {
    const first = await ensureStreams(jsm);
    expect(first.map((r) => [r.name, r.action])).toEqual([
      ["DELIVERY_REQUESTS", "created"],
      ["WORKFLOW_FAILURES", "created"],
      ["DRONE_TELEMETRY", "created"],
      ["DELIVERY_STATUS", "created"],
      ["CARRIER_STATUS", "created"],
    ]);

    const requests = await jsm.streams.info("DELIVERY_REQUESTS");
    expect(requests.config.subjects).toEqual([
      "delivery.request.schedule.*",
      "delivery.request.reschedule.*",
      "delivery.request.cancel.*",
    ]);
    expect(requests.config.retention).toBe(RetentionPolicy.Workqueue);
    expect(requests.config.storage).toBe("file");
    expect(requests.config.duplicate_window).toBe(nanos(2 * 60_000));

    const telemetry = await jsm.streams.info("DRONE_TELEMETRY");
    expect(telemetry.config.retention).toBe(RetentionPolicy.Limits);
    expect(telemetry.config.max_age).toBe(nanos(STREAMS.DRONE_TELEMETRY.maxAgeMs));
    expect((await jsm.streams.info("DELIVERY_STATUS")).config.max_age).toBe(nanos(7 * 24 * 3_600_000));
    const carrier = await jsm.streams.info("CARRIER_STATUS");
    expect(carrier.config.retention).toBe(RetentionPolicy.Limits);
    expect(carrier.config.subjects).toEqual(["thirdparty.*.status"]);

    const second = await ensureStreams(jsm);
    expect(second.every((r) => r.action === "unchanged")).toBe(true);
  });

  it("is safe when several services run it at once", async () => {
    for (const def of STREAM_DEFINITIONS) await jsm.streams.delete(def.name);
    const connections = await Promise.all(
      [1, 2, 3, 4].map((i) => connectNats({ url: server.url, name: `streams-test-${i}` })),
    );
    try {
      const managers = await Promise.all(connections.map((c) => c.jetstreamManager()));
      const all = await Promise.all(managers.map((m) => ensureStreams(m)));
      for (const def of STREAM_DEFINITIONS) {
        const created = all.flat().filter((r) => r.name === def.name && r.action === "created");
        expect(created.length, def.name).toBeGreaterThanOrEqual(1);
      }
      const names: string[] = [];
      for await (const name of jsm.streams.names()) names.push(name);
      expect(names.sort()).toEqual(STREAM_DEFINITIONS.map((d) => d.name).sort());
    } finally {
      await Promise.all(connections.map((c) => drainQuietly(c)));
    }
    expect((await ensureStreams(jsm)).every((r) => r.action === "unchanged")).toBe(true);
  });

  it("puts back a changed configuration", async () => {
    await ensureStreams(jsm);
    await jsm.streams.update("DRONE_TELEMETRY", { max_age: nanos(30 * 60_000), description: "edited by hand" });
    const results = await ensureStreams(jsm);
    const telemetry = results.find((r) => r.name === "DRONE_TELEMETRY");
    expect(telemetry?.action).toBe("updated");
    expect(telemetry?.changed).toEqual(expect.arrayContaining(["max_age", "description"]));
    expect((await jsm.streams.info("DRONE_TELEMETRY")).config.max_age).toBe(nanos(STREAMS.DRONE_TELEMETRY.maxAgeMs));
  });

  it("never shortens a retention or deduplication window made longer by hand", async () => {
    await ensureStreams(jsm);
    await jsm.streams.update("DRONE_TELEMETRY", { max_age: nanos(3 * 3_600_000), duplicate_window: nanos(5 * 60_000) });
    await jsm.streams.update("DELIVERY_STATUS", { max_age: 0 });
    const results = await ensureStreams(jsm);
    const telemetry = results.find((r) => r.name === "DRONE_TELEMETRY");
    expect(telemetry?.action).toBe("unchanged");
    expect(telemetry?.kept.map((k) => k.field).sort()).toEqual(["duplicate_window", "max_age"]);
    const config = (await jsm.streams.info("DRONE_TELEMETRY")).config;
    expect(config.max_age).toBe(nanos(3 * 3_600_000));
    expect(config.duplicate_window).toBe(nanos(5 * 60_000));
    // max_age 0 keeps messages forever: the longest of all.
    expect(results.find((r) => r.name === "DELIVERY_STATUS")?.kept).toEqual([{ field: "max_age", current: "unlimited", wanted: "604800 s" }]);
    expect((await jsm.streams.info("DELIVERY_STATUS")).config.max_age).toBe(0);
    await jsm.streams.update("DELIVERY_STATUS", { max_age: nanos(STREAMS.DELIVERY_STATUS.maxAgeMs) });
  });

  it("reports a retention it cannot change in place, and leaves the stream as it is", async () => {
    const def: StreamDefinition = { ...STREAMS.DELIVERY_STATUS, name: "RETENTION_TEST", subjects: ["retention.test.>"] };
    await ensureStreams(jsm, { streams: [def] });
    const warnings: string[] = [];
    const [result] = await ensureStreams(jsm, {
      streams: [{ ...def, retention: RetentionPolicy.Workqueue, description: "changed too" }],
      warn: (m) => warnings.push(m),
    });
    expect(result?.unapplied).toEqual([{ field: "retention", current: "limits", wanted: "workqueue" }]);
    // What can be applied is applied; the retention stays.
    expect(result?.action).toBe("updated");
    expect(result?.changed).toEqual(["description"]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/RETENTION_TEST exists with a different retention .*cannot be changed in place/);
    const info = await jsm.streams.info("RETENTION_TEST");
    expect(info.config.retention).toBe(RetentionPolicy.Limits);
    expect(info.config.description).toBe("changed too");
    await jsm.streams.delete("RETENTION_TEST");
  });

  it("validates the replica count, and a single server refuses more than one with a clear error", async () => {
    await expect(ensureStreams(jsm, { replicas: 0 })).rejects.toThrow(/replicas must be a whole number from 1 to 5, got 0/);
    await expect(ensureStreams(jsm, { replicas: 6 })).rejects.toThrow(RangeError);
    const def: StreamDefinition = { ...STREAMS.DELIVERY_STATUS, name: "REPLICAS_TEST", subjects: ["replicas.test.>"] };
    await expect(ensureStreams(jsm, { streams: [def], replicas: 3 })).rejects.toThrow(/creating stream REPLICAS_TEST \(3 replicas\) failed: .*replicas/i);
  });
});

describe("NATS_REPLICAS", () => {
  it("defaults to 1 and accepts 1 to 5", () => {
    expect(natsReplicasFromEnv({})).toBe(1);
    expect(natsReplicasFromEnv({ NATS_REPLICAS: " 3 " })).toBe(3);
    expect(natsReplicasFromEnv({ NATS_REPLICAS: "5" })).toBe(5);
  });

  it.each(["0", "6", "2.5", "three", "-1"])("refuses NATS_REPLICAS=%s naming the variable and the range", (raw) => {
    expect(() => natsReplicasFromEnv({ NATS_REPLICAS: raw })).toThrow(new RegExp(`NATS_REPLICAS=${raw.replace(".", "\\.")} is not a whole number from 1 to 5`));
  });
});
