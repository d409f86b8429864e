import { StorageType, type JetStreamClient, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { connectNats, drainQuietly } from "./connection.js";
import { openBucket } from "./kv.js";

const text = new TextEncoder();
const decode = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

describe("openBucket", () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: "kv-test" });
    js = nc.jetstream();
  });

  afterAll(async () => {
    await drainQuietly(nc);
    await server?.stop();
  });

  it("creates a file-backed bucket and stores values", async () => {
    const kv = await openBucket(js, "packages", { description: "package records", history: 3 });
    const status = await kv.status();
    expect(status.streamInfo.config.storage).toBe("file");
    expect(status.history).toBe(3);

    const rev = await kv.put("p-1", text.encode("small"));
    const entry = await kv.get("p-1");
    expect(entry?.revision).toBe(rev);
    expect(decode(entry?.value)).toBe("small");
    expect(await kv.get("missing")).toBeNull();
  });

  it("refuses an update made against a stale revision", async () => {
    const kv = await openBucket(js, "deliveries");
    const r1 = await kv.create("d-1", text.encode("created"));
    const r2 = await kv.update("d-1", text.encode("assigned"), r1);
    expect(r2).toBeGreaterThan(r1);

    // A second writer still holding r1 loses.
    await expect(kv.update("d-1", text.encode("cancelled"), r1)).rejects.toThrow(/wrong last sequence/);
    // create() of an existing key fails too.
    await expect(kv.create("d-1", text.encode("again"))).rejects.toThrow();

    const entry = await kv.get("d-1");
    expect(decode(entry?.value)).toBe("assigned");
    expect(entry?.revision).toBe(r2);
    const history = [];
    for await (const e of await kv.history({ key: "d-1" })) history.push(decode(e.value));
    expect(history).toEqual(["created", "assigned"]);
  });

  it("opens an existing bucket, aligns its history, and handles concurrent opens", async () => {
    const all = await Promise.all([1, 2, 3].map(() => openBucket(js, "accounts", { history: 2 })));
    await all[0]?.put("a-1", text.encode("active"));
    expect(decode((await all[2]?.get("a-1"))?.value)).toBe("active");

    const reopened = await openBucket(js, "accounts", { history: 10 });
    expect((await reopened.status()).history).toBe(10);
    expect(decode((await reopened.get("a-1"))?.value)).toBe("active");
  });

  it("binds only to existing buckets when asked, and validates history", async () => {
    await expect(openBucket(js, "nope", { bindOnly: true })).rejects.toThrow(/KV bucket nope does not exist/);
    await openBucket(js, "exists");
    const bound = await openBucket(js, "exists", { bindOnly: true });
    await bound.put("k", text.encode("v"));
    expect(decode((await bound.get("k"))?.value)).toBe("v");
    await expect(openBucket(js, "bad-history", { history: 0 })).rejects.toThrow(RangeError);
    await expect(openBucket(js, "bad-replicas", { replicas: 0 })).rejects.toThrow(/replicas must be a whole number from 1 to 5/);
  });

  it("never lowers a history or TTL made stricter by hand, and reports a storage it cannot change", async () => {
    const jsm = await nc.jetstreamManager();
    await openBucket(js, "stricter", { history: 2, ttlMs: 60_000, description: "first" });
    await jsm.streams.update("KV_stricter", { max_msgs_per_subject: 20, max_age: 0 });
    const warnings: string[] = [];
    const kv = await openBucket(js, "stricter", { history: 2, ttlMs: 60_000, description: "second", warn: (m) => warnings.push(m) });
    const config = (await kv.status()).streamInfo.config;
    expect(config.max_msgs_per_subject).toBe(20);
    expect(config.max_age).toBe(0);
    expect(config.description).toBe("second");
    expect(warnings).toEqual([]);

    // A memory bucket cannot become a file bucket in place: reported, left alone, still usable.
    await js.views.kv("in-memory", { storage: StorageType.Memory, history: 1 });
    const memory = await openBucket(js, "in-memory", { history: 1, warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/stream KV_in-memory exists with a different storage \(storage: memory; the platform defines storage: file\)/);
    expect((await memory.status()).streamInfo.config.storage).toBe("memory");
    await memory.put("k", text.encode("v"));
  });
});
