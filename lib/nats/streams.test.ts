import { nanos, RetentionPolicy, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { connectNats, drainQuietly } from "./connection.js";
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

  it("refuses to change a stream's retention in place", async () => {
    const def: StreamDefinition = { ...STREAMS.DELIVERY_STATUS, name: "RETENTION_TEST", subjects: ["retention.test.>"] };
    await ensureStreams(jsm, { streams: [def] });
    await expect(ensureStreams(jsm, { streams: [{ ...def, retention: RetentionPolicy.Workqueue }] })).rejects.toThrow(
      /RETENTION_TEST exists with a different retention/,
    );
    await jsm.streams.delete("RETENTION_TEST");
  });
});
