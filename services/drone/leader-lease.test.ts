// The flight simulator's lease when its holder dies rather than stops: it never gives the key
// back, so a standby takes it over once it has gone a whole lease unrenewed, and only one does.
// (A holder that stops cleanly is in flight.test.ts; a SIGKILLed drone process in
// test/scale-out.test.ts.)
import type { NatsConnection } from "nats";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectNats } from "../../lib/nats/connection.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { LeaderLease } from "./leader-lease.js";
import { LEADER_KEY, openDroneStore } from "./store.js";

let nats: TestNatsServer;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
}, 60_000);

afterAll(async () => {
  for (const nc of connections) if (!nc.isClosed()) await nc.close();
  await nats?.stop();
}, 30_000);

describe("the simulator lease when its holder dies", () => {
  it("passes to exactly one standby once the dead holder's lease ran out, and the dead one stops counting itself leader", { timeout: 60_000 }, async () => {
    const leading = new Set<string>();
    const ids = ["a", "b", "c"];
    // Each instance on its own connection, as separate processes are.
    const leases = await Promise.all(
      ids.map(async (instanceId) => {
        const nc = await connectNats({ url: nats.url, name: `lease-${instanceId}`, maxReconnectAttempts: 0 });
        connections.push(nc);
        const { kv } = await openDroneStore(nc.jetstream());
        const lease = new LeaderLease({
          kv,
          key: LEADER_KEY,
          instanceId,
          leaseMs: 1_000,
          now: () => Date.now(),
          log: pino({ level: "silent" }),
          onLead: () => leading.add(instanceId),
          onFollow: () => leading.delete(instanceId),
        });
        return { instanceId, nc, kv, lease };
      }),
    );
    for (const { lease } of leases) lease.start();
    try {
      await vi.waitFor(() => expect(leading.size).toBe(1), { timeout: 10_000, interval: 10 });
      const holderId = [...leading][0]!;
      const holder = leases.find((l) => l.instanceId === holderId)!;
      const standbys = leases.filter((l) => l !== holder);
      const held = await standbys[0]!.kv.get(LEADER_KEY);
      expect(JSON.parse(held!.string())).toEqual({ instance: holderId });

      // The holder's process dies: its connection is gone, nothing deletes the key.
      await holder.nc.close();

      await vi.waitFor(
        () => {
          const others = standbys.filter((s) => s.lease.isLeader());
          expect(others).toHaveLength(1);
        },
        { timeout: 20_000, interval: 10 },
      );
      const successor = standbys.find((s) => s.lease.isLeader())!;
      const now = await standbys[0]!.kv.get(LEADER_KEY);
      expect(JSON.parse(now!.string())).toEqual({ instance: successor.instanceId });
      expect(now!.revision).toBeGreaterThan(held!.revision);
      // Cut off, the dead holder's own view runs out too (it could not renew): no two leaders.
      await vi.waitFor(() => expect(holder.lease.isLeader()).toBe(false), { timeout: 10_000, interval: 10 });
      // Never two at once afterwards either (the successor keeps it unless a stall of a whole lease
      // hands it on, which the lease allows).
      for (let i = 0; i < 30; i++) {
        expect(leases.filter((l) => l.lease.isLeader()).length).toBeLessThanOrEqual(1);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      for (const { lease } of leases) await lease.stop();
    }
  });
});
