import { describe, expect, it } from "vitest";
import { ACCOUNTS_BUCKET } from "../../services/account/store.js";
import { HISTORY_BUCKET } from "../../services/delivery/history.js";
import { DELIVERIES_BUCKET } from "../../services/delivery/store.js";
import { DRONES_BUCKET } from "../../services/drone/store.js";
import { PACKAGES_BUCKET } from "../../services/package/store.js";
import { WORKFLOWS_BUCKET } from "../../services/scheduler/workflow-store.js";
import { COMPENSATIONS_BUCKET } from "../../services/supervisor/compensation-store.js";
import { PICKUPS_BUCKET } from "../../services/thirdparty/store.js";
import { DEFAULT_PORTS, type ServiceName } from "../service/ports.js";
import {
  ADMIN_IDENTITY,
  inboxPrefixOf,
  NATS_GRANTS,
  NATS_IDENTITIES,
  natsPermissionsOf,
  SERVICE_NATS_IDENTITIES,
} from "./permissions.js";
import { STREAMS, type StreamName } from "./streams.js";

/** The buckets each service's code opens (its stores). */
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

function writersOf(stream: StreamName): string[] {
  return SERVICE_NATS_IDENTITIES.filter((s) => NATS_GRANTS[s].writes.includes(stream));
}

describe("the NATS permission table", () => {
  it("has a row for every service, and admin", () => {
    expect([...SERVICE_NATS_IDENTITIES].sort()).toEqual(Object.keys(DEFAULT_PORTS).sort());
    expect(NATS_IDENTITIES).toContain(ADMIN_IDENTITY);
  });

  it("names the buckets the services' stores open", () => {
    for (const service of SERVICE_NATS_IDENTITIES) {
      expect([...NATS_GRANTS[service].buckets].sort(), service).toEqual([...BUCKETS_IN_CODE[service]].sort());
    }
  });

  it("lets one service write each stream, the workflow failures excepted (Scheduler and Supervisor)", () => {
    expect(writersOf("DELIVERY_REQUESTS")).toEqual(["ingestion"]);
    expect(writersOf("DRONE_TELEMETRY")).toEqual(["drone"]);
    expect(writersOf("DELIVERY_STATUS")).toEqual(["delivery"]);
    expect(writersOf("CARRIER_STATUS")).toEqual(["thirdparty"]);
    expect(writersOf("WORKFLOW_FAILURES")).toEqual(["scheduler", "supervisor"]);
  });

  it("keeps each bucket to one service, the shared saga log excepted", () => {
    const owners = new Map<string, string[]>();
    for (const service of SERVICE_NATS_IDENTITIES) {
      for (const bucket of NATS_GRANTS[service].buckets) owners.set(bucket, [...(owners.get(bucket) ?? []), service]);
    }
    for (const [bucket, services] of owners) {
      expect(services, bucket).toEqual(bucket === WORKFLOWS_BUCKET ? ["scheduler", "supervisor"] : [services[0]]);
    }
  });

  it("gives a service the subjects of the streams it writes, and no wildcard beyond its own", () => {
    const drone = natsPermissionsOf("drone");
    expect(drone.publish).toContain("drone.*.location");
    expect(drone.publish).toContain("$KV.drones.>");
    expect(drone.publish).not.toContain("delivery.*.status");
    expect(drone.publish).not.toContain("thirdparty.*.status");
    expect(natsPermissionsOf("thirdparty").publish).toContain("thirdparty.*.status");
    expect(natsPermissionsOf("delivery").publish).toContain("$JS.API.CONSUMER.MSG.NEXT.CARRIER_STATUS.*");
    expect(natsPermissionsOf("delivery").publish).not.toContain("thirdparty.*.status");
    expect(natsPermissionsOf("ingestion").publish).toEqual(expect.arrayContaining([...STREAMS.DELIVERY_REQUESTS.subjects]));
    for (const service of SERVICE_NATS_IDENTITIES) {
      const { publish, subscribe } = natsPermissionsOf(service);
      for (const subject of [...publish, ...subscribe]) {
        expect(subject, service).not.toMatch(/^(>|\$JS\.API\.>|\$JS\.>|\$KV\.>|_INBOX\.>|\$JS\.ACK\.>)$/);
        expect(subject, service).not.toMatch(/STREAM\.(DELETE|PURGE)|MSG\.DELETE|\$JS\.API\.(ACCOUNT|META|SERVER)/);
        // Stream operations name their stream: no `$JS.API.STREAM.INFO.*` and the like.
        expect(subject, service).not.toMatch(/^\$JS\.API\.STREAM\..*[*>]$/);
      }
      expect(subscribe[0]).toBe(`${inboxPrefixOf(service)}.>`);
    }
  });

  it("lets admin do everything", () => {
    expect(natsPermissionsOf(ADMIN_IDENTITY)).toEqual({ publish: [">"], subscribe: [">"] });
  });
});
