// A service added the way services/README.md says, with ONE registry entry: a fixture "locker"
// service (a test-only contract, dronedelivery.locker.v1.LockerService) whose entry names its
// port, what it serves, who may call each method and its NATS bucket. Everything else is derived
// from the registry plus that entry: the service kit starts it on the entry's port with mutual TLS
// (certificates from a development PKI in a temporary folder) and enforces its caller rules; a
// private nats-server runs with the users and permissions derived from the same registry.
// It is reachable, authorized (its declared caller may call, another identity is refused) and
// permitted (it may use its bucket, nothing else).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, file_google_protobuf_wrappers } from "@bufbuild/protobuf/wkt";
import type { NatsConnection, NatsError } from "nats";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommsLayer, type CommsLayer } from "../../lib/comms/layer.js";
import { connectNatsAs, drainQuietly } from "../../lib/nats/connection.js";
import { STREAMS } from "../../lib/nats/streams.js";
import { ensureDevPki } from "../../lib/security/dev-pki.js";
import type { Env } from "../../lib/service/config.js";
import { registration } from "../../lib/service/grpc-server.js";
import { waitForHealth } from "../../lib/service/health-probe.js";
import type { ServiceName } from "../../lib/service/ports.js";
import {
  gatewayEntry,
  NO_CALLER,
  PLATFORM_REGISTRY,
  registeredService,
  registryProblems,
  serviceEntries,
  type Registry,
  type ServiceEntry,
} from "../../lib/service/registry.js";
import { startService, type RunningService, type ServiceModule } from "../../lib/service/service-host.js";
import { hermeticEnv } from "../harness/hermetic.js";
import { startNatsServer, type TestNatsServer } from "../harness/nats-server.js";
import { freePort } from "../harness/ports.js";

/** The fixture's contract, built in memory: two unary methods taking and returning a string. */
function lockerContract(): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "dronedelivery/locker/v1/locker_service.proto",
    package: "dronedelivery.locker.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    service: [
      {
        name: "LockerService",
        method: [
          { name: "OpenLocker", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue" },
          { name: "InspectLocker", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue" },
        ],
      },
    ],
  });
  const files = createFileRegistry(file, (name) => (name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined));
  return files.getService("dronedelivery.locker.v1.LockerService")!;
}

const LockerService = lockerContract();
const LOCKERS_BUCKET = "lockers";

/** The gRPC status code PERMISSION_DENIED (the same number in Connect's Code). */
const PERMISSION_DENIED = 7;

let registry: Registry;
let entry: ServiceEntry;
let nats: TestNatsServer;
let pkiDir: string;
let env: Env;
let service: RunningService | undefined;
const layers: CommsLayer[] = [];
const connections: NatsConnection[] = [];

/** The one thing a new service adds: its entry. */
function lockerEntry(port: number): ServiceEntry {
  return {
    kind: "service",
    name: "locker",
    port,
    serves: [
      {
        service: LockerService,
        callers: {
          OpenLocker: ["scheduler"], // the workflow opens the locker a parcel goes to
          InspectLocker: NO_CALLER,
        },
      },
    ],
    nats: { writes: [], buckets: [LOCKERS_BUCKET], consumes: [], reads: [], listens: [] },
    replicas: 1,
  };
}

/** Its module: what services/locker/module.ts would hold. */
const lockerModule = (): ServiceModule => ({
  ...registeredService("locker", registry),
  async create({ js }) {
    const lockers = await js.views.kv(LOCKERS_BUCKET);
    return {
      registrations: [
        registration(LockerService, {
          async openLocker(request: { value: string }) {
            await lockers.put(request.value, "open");
            return { value: `locker ${request.value} is open` };
          },
          async inspectLocker(request: { value: string }) {
            return { value: (await lockers.get(request.value))?.string() ?? "closed" };
          },
        } as never),
      ],
    };
  },
});

/** A client of the locker service as `identity`, through that identity's communication layer. */
async function clientAs(identity: string) {
  const comms = await createCommsLayer({ identity, env });
  layers.push(comms);
  return comms.client(LockerService, "locker" as ServiceName, { address: service!.address, resilience: false }) as unknown as {
    openLocker(request: { value: string }): Promise<{ value: string }>;
    inspectLocker(request: { value: string }): Promise<{ value: string }>;
  };
}

async function natsAs(identity: string): Promise<NatsConnection> {
  const nc = await connectNatsAs(identity, nats.serviceEnv, { reconnect: false });
  connections.push(nc);
  return nc;
}

/** The NATS error code of an error, or of the error it wraps. */
function natsCode(error: unknown): string {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = (e as NatsError).code;
    if (code) return code;
  }
  return String(error);
}

beforeAll(async () => {
  const port = await freePort();
  entry = lockerEntry(port);
  const gateway = gatewayEntry(PLATFORM_REGISTRY);
  registry = [...serviceEntries(PLATFORM_REGISTRY), entry, ...(gateway ? [gateway] : [])];
  pkiDir = await mkdtemp(path.join(tmpdir(), "dd-registry-pki-"));
  nats = await startNatsServer({ auth: true, registry });
  await ensureDevPki(pkiDir, ["locker", "scheduler", "account", "operator"]);
  env = {
    ...hermeticEnv(),
    ...nats.serviceEnv,
    INTERNAL_TLS: "on",
    INTERNAL_PKI_DIR: pkiDir,
    SHUTDOWN_GRACE_MS: "2000",
    SHUTDOWN_DRAIN_DELAY_MS: "0",
  };
  service = await startService(lockerModule(), { env, registry, log: pino({ level: process.env["TEST_LOG_LEVEL"] ?? "silent" }) });
  await service.ready;
}, 120_000);

afterAll(async () => {
  for (const comms of layers) comms.close();
  await Promise.all(connections.map((nc) => drainQuietly(nc)));
  await service?.stop();
  await nats?.stop();
  if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
});

describe("a service registered in one entry", () => {
  it("makes a consistent registry", () => {
    expect(registryProblems(registry)).toEqual([]);
  });

  it("is reachable: the service kit serves it on its entry's port with mutual TLS", async () => {
    expect(service?.port).toBe(entry.port);
    // The operator's certificate (the health probe's identity) gets SERVING; no certificate gets nothing.
    expect(await waitForHealth(service!.address, { timeoutMs: 20_000, env: { INTERNAL_TLS: "on", INTERNAL_PKI_DIR: pkiDir } })).toEqual({ ok: true, last: "SERVING" });
    expect((await waitForHealth(service!.address, { timeoutMs: 1_000, env: { INTERNAL_TLS: "off" } })).ok).toBe(false);
  });

  it("is authorized: its declared caller may call, another identity is refused with PERMISSION_DENIED", async () => {
    const scheduler = await clientAs("scheduler");
    expect(await scheduler.openLocker({ value: "L-1" })).toEqual(expect.objectContaining({ value: "locker L-1 is open" }));

    const account = await clientAs("account");
    const refused = await account.openLocker({ value: "L-2" }).catch((error: unknown) => error);
    expect((refused as { code?: number }).code).toBe(PERMISSION_DENIED);
    // A method with no internal caller is refused to everyone.
    const inspect = await scheduler.inspectLocker({ value: "L-1" }).catch((error: unknown) => error);
    expect((inspect as { code?: number }).code).toBe(PERMISSION_DENIED);
  });

  it("is permitted: it keeps its own bucket, and NATS refuses it another's bucket and stream", async () => {
    const locker = await natsAs("locker");
    // What the handler wrote, read back as the locker itself.
    const lockers = await locker.jetstream().views.kv(LOCKERS_BUCKET);
    expect((await lockers.get("L-1"))?.string()).toBe("open");
    expect((await lockers.get("L-2"))?.string()).toBeUndefined();

    // Another service's bucket, and a stream it does not write.
    expect(await locker.jetstream().views.kv("accounts").then(() => "allowed", natsCode)).toBe("PERMISSIONS_VIOLATION");
    const subject = `${STREAMS.DELIVERY_REQUESTS.subjects[0]!.replace(/[*>]/g, "x")}`;
    expect(await locker.jetstream().publish(subject, new Uint8Array()).then(() => "allowed", natsCode)).toBe("PERMISSIONS_VIOLATION");

    // And another identity may not touch the locker's bucket.
    const account = await natsAs("account");
    expect(await account.jetstream().views.kv(LOCKERS_BUCKET).then(() => "allowed", natsCode)).toBe("PERMISSIONS_VIOLATION");
  });
});
