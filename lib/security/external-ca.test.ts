// Certificates from an external CA (cert-manager / SPIFFE style: CA, certificate and key files
// named by INTERNAL_TLS_CA_FILE, INTERNAL_TLS_CERT_FILE, INTERNAL_TLS_KEY_FILE), and development
// certificates that name a service's DNS names. The CA and certificates are made here with the
// platform's own certificate code, laid out as a Kubernetes TLS Secret mounts them
// (ca.crt, tls.crt, tls.key), and used through the communication layer the services use, and by
// a real service (Drone) started on them.

import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { droneModule } from "../../services/drone/module.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { createCommsLayer, type CommsLayer } from "../comms/layer.js";
import { createClient, type Client, type ServiceImpl } from "../grpc/index.js";
import { ConfigError, type Env } from "../service/config.js";
import { startGrpcServer, type RunningGrpcServer } from "../service/grpc-server.js";
import type { RunningService } from "../service/service-host.js";
import { buildCaCertificate, buildIdentityCertificate, generateKeyPairPem } from "./certificates.js";
import { channelCredentials } from "./credentials.js";
import { ensureDevPki } from "./dev-pki.js";
import { dnsSubjectAltNames } from "./subject-alt-names.js";
import {
  ExternalTlsError,
  devPkiDnsNames,
  hostsOf,
  loadExternalIdentity,
  loadInternalTls,
  readInternalTlsSettings,
  serverNameOptions,
} from "./tls-config.js";

/** An AssignDrone request that keeps its contract's field rules (the binding checks them first). */
function assignment(deliveryId: string) {
  const here = { latitude: 47.6, longitude: -122.3 };
  return { deliveryId, ownerId: "acct-1", pickup: here, dropoff: here, packages: [{ packageId: "p-1", size: 1, weightKg: 1 }] };
}

const NOW = { now: new Date(), validityDays: 30 };
const CLUSTER_NAMES = (identity: string) => [`${identity}.dronedelivery.svc`, `${identity}.dronedelivery.svc.cluster.local`];

/** A CA made with the platform's certificate code; `issue` writes an identity's Secret-like folder. */
async function makeCa(dir: string): Promise<{ caFile: string; issue(identity: string, dnsNames?: readonly string[]): Promise<Env> }> {
  await mkdir(dir, { recursive: true });
  const key = await generateKeyPairPem();
  const ca = { certPem: await buildCaCertificate(key, { now: new Date(), validityDays: 365 }), keyPem: key.keyPem };
  const caFile = join(dir, "ca.crt");
  await writeFile(caFile, ca.certPem);
  return {
    caFile,
    async issue(identity, dnsNames = []) {
      const folder = join(dir, identity);
      await mkdir(folder, { recursive: true });
      const leafKey = await generateKeyPairPem();
      await writeFile(join(folder, "ca.crt"), ca.certPem);
      await writeFile(join(folder, "tls.crt"), await buildIdentityCertificate(leafKey, identity, ca, NOW, dnsNames));
      await writeFile(join(folder, "tls.key"), leafKey.keyPem, { mode: 0o600 });
      return {
        INTERNAL_TLS_CA_FILE: join(folder, "ca.crt"),
        INTERNAL_TLS_CERT_FILE: join(folder, "tls.crt"),
        INTERNAL_TLS_KEY_FILE: join(folder, "tls.key"),
      };
    },
  };
}

async function rpcCode(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (error) {
    if (error instanceof ConnectError) return error.code;
    throw error;
  }
}

function droneImpl(handled: string[]): ServiceImpl<typeof DroneSchedulerService> {
  return {
    assignDrone: (request) => {
      handled.push(request.deliveryId);
      return {};
    },
    releaseAssignment: () => ({}),
    getAssignment: () => ({}),
    getDrone: () => ({}),
    listDrones: () => ({}),
    getUtilization: () => ({}),
    rerouteAssignment: () => ({}),
    watchFleet: async function* () {},
  };
}

let root: string;
let envs: Record<"drone" | "scheduler" | "gateway" | "foreignScheduler", Env>;
let rightCaFile: string;
let droneLayer: CommsLayer;
let server: RunningGrpcServer;
const handled: string[] = [];
const layers: CommsLayer[] = [];
const clients: Client<DescService>[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "external-ca-test-"));
  const [ca, foreign] = await Promise.all([makeCa(join(root, "ca")), makeCa(join(root, "foreign"))]);
  const [drone, scheduler, gateway, foreignScheduler] = await Promise.all([
    ca.issue("drone", CLUSTER_NAMES("drone")),
    ca.issue("scheduler", CLUSTER_NAMES("scheduler")),
    ca.issue("gateway"),
    foreign.issue("scheduler", CLUSTER_NAMES("scheduler")),
  ]);
  envs = { drone, scheduler, gateway, foreignScheduler };
  rightCaFile = ca.caFile;
  droneLayer = await createCommsLayer({ identity: "drone", env: drone });
  layers.push(droneLayer);
  server = await startGrpcServer([{ service: DroneSchedulerService, impl: droneImpl(handled) }], {
    security: droneLayer.server(),
    host: "127.0.0.1",
    port: 0,
  });
  server.setServing(true);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const layer of layers) layer.close();
  await server?.shutdown(0);
  await rm(root, { recursive: true, force: true });
});

describe("services on certificates from an external CA", () => {
  it("reads the CA, certificate and key from the files the environment names, not the development PKI", async () => {
    const settings = readInternalTlsSettings({ ...envs.drone, INTERNAL_PKI_DIR: join(root, "never-made") });
    expect(settings).toMatchObject({ enabled: true, source: "files" });
    const tls = await loadInternalTls({ ...envs.drone, INTERNAL_PKI_DIR: join(root, "never-made") }, "drone");
    expect(tls?.source).toBe("files");
    expect(new X509Certificate(tls!.material.certPem).subjectAltName).toContain("URI:spiffe://dronedelivery.local/drone");
    await expect(stat(join(root, "never-made"))).rejects.toThrow(/ENOENT/);
  });

  it("accepts a caller the CA identifies as allowed, through the communication layer", async () => {
    const scheduler = await createCommsLayer({ identity: "scheduler", env: envs.scheduler });
    layers.push(scheduler);
    const drones = scheduler.client(DroneSchedulerService, "drone", { address: server.address, resilience: false });
    handled.length = 0;
    expect(await rpcCode(drones.assignDrone(assignment("ext-1")))).toBe("ok");
    expect(handled).toEqual(["ext-1"]);
  });

  it("refuses a caller whose certificate names another identity (PERMISSION_DENIED)", async () => {
    const gateway = await createCommsLayer({ identity: "gateway", env: envs.gateway });
    layers.push(gateway);
    const drones = gateway.client(DroneSchedulerService, "drone", { address: server.address, resilience: false });
    handled.length = 0;
    const refused = drones.assignDrone(assignment("ext-2"));
    await expect(refused).rejects.toThrow(/may be called by scheduler, not by gateway/);
    expect(await rpcCode(refused)).toBe(Code.PermissionDenied);
    expect(handled).toEqual([]);
  });

  it("refuses a caller whose certificate another CA issued, at the handshake", async () => {
    const foreign = await loadInternalTls(envs.foreignScheduler, "scheduler");
    // It trusts the right CA (so it would accept the server), but the server does not trust it.
    const material = { ...foreign!.material, caPem: await readFile(rightCaFile) };
    const health = createClient(Health, {
      address: server.address,
      credentials: channelCredentials(material, { expectedServer: "drone" }),
      defaultTimeoutMs: 15_000,
    });
    clients.push(health as unknown as Client<DescService>);
    expect(await rpcCode(health.check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("refuses at start a certificate that does not carry the process's SPIFFE ID, or whose key or CA does not match", async () => {
    await expect(loadInternalTls(envs.gateway, "drone")).rejects.toThrow(/does not name spiffe:\/\/dronedelivery.local\/drone/);
    await expect(loadExternalIdentity({ caFile: envs.drone.INTERNAL_TLS_CA_FILE!, certFile: envs.drone.INTERNAL_TLS_CERT_FILE!, keyFile: envs.scheduler.INTERNAL_TLS_KEY_FILE! }, "drone")).rejects.toThrow(
      ExternalTlsError,
    );
    await expect(
      loadExternalIdentity({ caFile: join(root, "foreign", "ca.crt"), certFile: envs.drone.INTERNAL_TLS_CERT_FILE!, keyFile: envs.drone.INTERNAL_TLS_KEY_FILE! }, "drone"),
    ).rejects.toThrow(/not issued by a CA in/);
  });

  it("needs all three files", () => {
    expect(() => readInternalTlsSettings({ INTERNAL_TLS_CA_FILE: "/x/ca.crt", INTERNAL_TLS_CERT_FILE: "/x/tls.crt" })).toThrow(ConfigError);
    expect(() => readInternalTlsSettings({ INTERNAL_TLS_CA_FILE: "/x/ca.crt", INTERNAL_TLS_CERT_FILE: "/x/tls.crt" })).toThrow(/without INTERNAL_TLS_KEY_FILE/);
    expect(readInternalTlsSettings({ INTERNAL_TLS: "off", INTERNAL_TLS_CA_FILE: "/x/ca.crt" })).toEqual({ enabled: false });
  });
});

describe("a service of the platform started on an external CA's certificates", () => {
  let nats: TestNatsServer;
  let drone: RunningService;

  beforeAll(async () => {
    nats = await startNatsServer();
    drone = await startTestService(droneModule, nats.url, {
      env: { INTERNAL_TLS: "on", ...envs.drone, INTERNAL_PKI_DIR: join(root, "not-used"), DRONE_HEALTH_PORT: "0" },
    });
    await drone.ready;
  }, 120_000);

  afterAll(async () => {
    await drone?.stop(0, 0);
    await nats?.stop();
  });

  it("serves with its certificate, lets in the caller the table allows and refuses another", async () => {
    const scheduler = await createCommsLayer({ identity: "scheduler", env: envs.scheduler });
    const gateway = await createCommsLayer({ identity: "gateway", env: envs.gateway });
    layers.push(scheduler, gateway);
    const asScheduler = scheduler.client(DroneSchedulerService, "drone", { address: drone.address, resilience: false });
    const asGateway = gateway.client(DroneSchedulerService, "drone", { address: drone.address, resilience: false });
    // Answered by the handler (releasing an assignment that does not exist is a no-op).
    expect(await rpcCode(asScheduler.releaseAssignment({ deliveryId: "ext-none" }))).toBe("ok");
    expect(await rpcCode(asGateway.releaseAssignment({ deliveryId: "ext-none" }))).toBe(Code.PermissionDenied);
    await expect(stat(join(root, "not-used"))).rejects.toThrow(/ENOENT/);
  });

  it("answers the plaintext health port that Kubernetes probes", async () => {
    expect(drone.grpc.healthPort).toBeGreaterThan(0);
    const health = createClient(Health, { address: `127.0.0.1:${drone.grpc.healthPort}`, credentials: grpc.credentials.createInsecure(), defaultTimeoutMs: 15_000 });
    clients.push(health as unknown as Client<DescService>);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});

describe("server names in a cluster", () => {
  it("a certificate naming the service's DNS name verifies when dialled by that name, and not by another", async () => {
    // The server's IP is dialled; grpc.ssl_target_name_override makes the client check (and send
    // as TLS server name) the DNS name a caller in the cluster would dial.
    const tls = await loadInternalTls(envs.scheduler, "scheduler");
    const dial = (name: string) => {
      const c = createClient(Health, {
        address: server.address,
        credentials: channelCredentials(tls!.material, { expectedServer: "drone" }),
        channelOptions: { "grpc.ssl_target_name_override": name },
        defaultTimeoutMs: 15_000,
      });
      clients.push(c as unknown as Client<DescService>);
      return c;
    };
    expect((await dial("drone.dronedelivery.svc").check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await dial("drone.dronedelivery.svc.cluster.local").check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(await rpcCode(dial("account.dronedelivery.svc").check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("checks the dialled DNS name as it is, and loopback addresses against localhost with the development PKI", () => {
    expect(serverNameOptions("delivery.dronedelivery.svc:7055", "dev-pki")).toEqual({});
    expect(serverNameOptions("dns:///delivery.dronedelivery.svc.cluster.local:7055", "files")).toEqual({});
    expect(serverNameOptions("127.0.0.1:7055,127.0.0.1:7155", "dev-pki")).toEqual({ "grpc.ssl_target_name_override": "localhost" });
    expect(serverNameOptions("[::1]:7055", "dev-pki")).toEqual({ "grpc.ssl_target_name_override": "localhost" });
    expect(serverNameOptions("127.0.0.1:7055", "files")).toEqual({});
    expect(hostsOf("ipv4:10.0.0.1:7055,10.0.0.2:7055")).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(hostsOf("[::1]:7055")).toEqual(["::1"]);
    expect(hostsOf("delivery:7055")).toEqual(["delivery"]);
  });

  it("the development PKI issues certificates for service DNS names, and remakes one that lacks them", async () => {
    const dir = join(root, "dev-pki");
    const names = devPkiDnsNames({ INTERNAL_PKI_NAMESPACE: "dronedelivery", INTERNAL_PKI_DNS_NAMES: "{identity}.example.internal" });
    expect(names("delivery")).toEqual([
      "delivery.example.internal",
      "delivery",
      "delivery.dronedelivery",
      "delivery.dronedelivery.svc",
      "delivery.dronedelivery.svc.cluster.local",
    ]);
    const plain = await ensureDevPki(dir, ["delivery"]);
    expect(dnsSubjectAltNames(new X509Certificate(plain.material("delivery").certPem).subjectAltName)).toEqual(["localhost"]);
    const named = await ensureDevPki(dir, ["delivery"], { dnsNames: names });
    expect(named.changes).toEqual([{ subject: "delivery", reason: "delivery: the certificate does not name delivery.example.internal, delivery, delivery.dronedelivery, delivery.dronedelivery.svc, delivery.dronedelivery.svc.cluster.local" }]);
    expect(dnsSubjectAltNames(new X509Certificate(named.material("delivery").certPem).subjectAltName)).toEqual(["localhost", ...names("delivery")]);
    // Kept afterwards, also by a process that asks for no names (the certificate may name more).
    expect((await ensureDevPki(dir, ["delivery"], { dnsNames: names })).changes).toEqual([]);
    expect((await ensureDevPki(dir, ["delivery"])).changes).toEqual([]);
    expect(() => devPkiDnsNames({ INTERNAL_PKI_DNS_NAMES: "bad name" })).toThrow(ConfigError);
    expect(() => devPkiDnsNames({ INTERNAL_PKI_NAMESPACE: "a.b" })).toThrow(ConfigError);
  }, 60_000);
});
