// Mutual TLS and caller authorization over real gRPC on loopback: a server with the drone
// identity serving DroneSchedulerService (through the platform's binding) and grpc.health.v1,
// clients with certificates from the development CA, from another CA, or none.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket } from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { HealthImplementation } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { addService, createClient, type Client, type ServiceImpl } from "../grpc/index.js";
import { authorizationInterceptor, type Denial } from "./authorization-interceptor.js";
import { DEV_TLS_CHANNEL_OPTIONS, channelCredentials, serverCredentials } from "./credentials.js";
import { ensureDevPki, type DevPki } from "./dev-pki.js";
import type { IdentityMaterial } from "./pki-files.js";
import { callerIdentity, isVerifiedTls, sessionOf } from "./peer-identity.js";

/** An AssignDrone request that keeps its contract's field rules (the binding checks them first). */
function assignment(deliveryId: string) {
  const here = { latitude: 47.6, longitude: -122.3 };
  return { deliveryId, ownerId: "acct-1", pickup: here, dropoff: here, packages: [{ packageId: "p-1", size: 1, weightKg: 1 }] };
}

/** DroneSchedulerService answering empty responses; AssignDrone records the delivery ids it handled. */
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

interface TestServer {
  readonly address: string;
  /** The caller identity of each call, as an interceptor sees it. */
  readonly callers: (string | undefined)[];
  /** The delivery ids AssignDrone handled. */
  readonly handled: string[];
  readonly denials: Denial[];
  stop(): Promise<void>;
}

/** A server of DroneSchedulerService and health, authorization enforced or not. */
async function startServer(credentials: grpc.ServerCredentials, enforce: boolean): Promise<TestServer> {
  const callers: (string | undefined)[] = [];
  const denials: Denial[] = [];
  const handled: string[] = [];
  const recordCaller: grpc.ServerInterceptor = (_method, call) => {
    callers.push(callerIdentity(call));
    return new grpc.ServerInterceptingCall(call);
  };
  const server = new grpc.Server({
    interceptors: [authorizationInterceptor({ enforce, onDenied: (d) => denials.push(d) }), recordCaller],
  });
  addService(server, DroneSchedulerService, droneImpl(handled));
  new HealthImplementation({ "": "SERVING" }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    callers,
    denials,
    handled,
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

const clients: Client<DescService>[] = [];
function client<S extends DescService>(service: S, address: string, credentials: grpc.ChannelCredentials): Client<S> {
  const created = createClient(service, { address, credentials, channelOptions: DEV_TLS_CHANNEL_OPTIONS, defaultTimeoutMs: 15_000 });
  clients.push(created as unknown as Client<DescService>);
  return created;
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

let root: string;
let pki: DevPki;
let foreign: DevPki;
let server: TestServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "mtls-test-"));
  [pki, foreign] = await Promise.all([
    ensureDevPki(join(root, "pki"), ["drone", "scheduler", "gateway", "operator"]),
    ensureDevPki(join(root, "foreign"), ["scheduler"]),
  ]);
  server = await startServer(serverCredentials(pki.material("drone")), true);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await server?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("mutual TLS", () => {
  it("lets a client with a certificate from the CA in, and the server sees its identity", async () => {
    const drones = client(DroneSchedulerService, server.address, channelCredentials(pki.material("scheduler")));
    server.callers.length = 0;
    await drones.assignDrone(assignment("d-1"));
    expect(server.callers).toEqual(["scheduler"]);
  });

  it("refuses a plaintext client", async () => {
    const health = client(Health, server.address, grpc.credentials.createInsecure());
    expect(await rpcCode(health.check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("refuses a client whose certificate comes from another CA", async () => {
    const other = foreign.material("scheduler");
    const mixed: IdentityMaterial = { ...other, caPem: pki.caPem }; // trusts the server, but is not trusted
    const health = client(Health, server.address, channelCredentials(mixed));
    expect(await rpcCode(health.check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("refuses a TLS client without a certificate", async () => {
    const health = client(Health, server.address, grpc.credentials.createSsl(pki.caPem));
    expect(await rpcCode(health.check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("does not connect to a server whose certificate comes from another CA", async () => {
    const health = client(Health, server.address, channelCredentials(foreign.material("scheduler")));
    expect(await rpcCode(health.check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("checks the server's identity when the client names the one it expects", async () => {
    const scheduler = pki.material("scheduler");
    const right = client(Health, server.address, channelCredentials(scheduler, { expectedServer: "drone" }));
    const wrong = client(Health, server.address, channelCredentials(scheduler, { expectedServer: "account" }));
    expect((await right.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(await rpcCode(wrong.check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("tells a handler who called, from the call itself", async () => {
    const whoAmI: grpc.ServiceDefinition = {
      get: {
        path: "/test.WhoAmI/Get",
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    };
    const plain = new grpc.Server();
    plain.addService(whoAmI, {
      get: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
        done(null, Buffer.from(`${callerIdentity(call) ?? "-"} ${isVerifiedTls(call)}`)),
    });
    const port = await new Promise<number>((resolve, reject) =>
      plain.bindAsync("127.0.0.1:0", serverCredentials(pki.material("drone")), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const Ctor = grpc.makeGenericClientConstructor(whoAmI, "WhoAmI");
    // Dials the IP address with no server-name override: the IP SAN 127.0.0.1 is what matches.
    const raw = new Ctor(`127.0.0.1:${port}`, channelCredentials(pki.material("gateway")));
    try {
      const answer = await new Promise<Buffer>((resolve, reject) =>
        raw.makeUnaryRequest("/test.WhoAmI/Get", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e, v) =>
          e || v === undefined ? reject(e ?? new Error("no answer")) : resolve(v),
        ),
      );
      expect(answer.toString()).toBe("gateway true");
    } finally {
      raw.close();
      await new Promise<void>((resolve) => plain.tryShutdown(() => resolve()));
    }
  });
});

describe("authorization", () => {
  it("lets the scheduler assign drones and refuses the gateway with PERMISSION_DENIED", async () => {
    const scheduler = client(DroneSchedulerService, server.address, channelCredentials(pki.material("scheduler")));
    const gateway = client(DroneSchedulerService, server.address, channelCredentials(pki.material("gateway")));
    server.denials.length = 0;
    server.handled.length = 0;
    expect(await rpcCode(scheduler.assignDrone(assignment("d-2")))).toBe("ok");
    const refused = gateway.assignDrone(assignment("d-3"));
    await expect(refused).rejects.toThrow(/may be called by scheduler, not by gateway/);
    expect(await rpcCode(refused)).toBe(Code.PermissionDenied);
    expect(server.denials).toEqual([
      {
        path: "/dronedelivery.drone.v1.DroneSchedulerService/AssignDrone",
        caller: "gateway",
        code: Code.PermissionDenied,
        reason: expect.stringContaining("not by gateway") as unknown as string,
      },
    ]);
    // The refused call never reached its handler.
    expect(server.handled).toEqual(["d-2"]);
  });

  it("reads a connection's certificate once and still decides every call", async () => {
    const scheduler = client(DroneSchedulerService, server.address, channelCredentials(pki.material("scheduler")));
    const gateway = client(DroneSchedulerService, server.address, channelCredentials(pki.material("gateway")));
    // Connected, so that only the calls below read certificates.
    await scheduler.assignDrone(assignment("d-warm"));
    expect(await rpcCode(gateway.assignDrone(assignment("d-warm-refused")))).toBe(Code.PermissionDenied);
    const original = TLSSocket.prototype.getPeerCertificate;
    let reads = 0;
    TLSSocket.prototype.getPeerCertificate = function (this: TLSSocket, ...args: [detailed?: boolean]) {
      // Server side only: other tests' clients may (re)connect meanwhile and check their servers.
      if ((this as unknown as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer) reads++;
      return original.apply(this, args as [true]);
    } as typeof original;
    try {
      server.callers.length = 0;
      server.denials.length = 0;
      for (let i = 0; i < 5; i++) {
        expect(await rpcCode(scheduler.assignDrone(assignment(`d-many-${i}`)))).toBe("ok");
        expect(await rpcCode(gateway.assignDrone(assignment(`d-refused-${i}`)))).toBe(Code.PermissionDenied);
      }
    } finally {
      TLSSocket.prototype.getPeerCertificate = original;
    }
    expect(reads).toBe(0);
    // The interceptor after the check sees each call's caller, refused or not.
    expect(server.callers).toEqual(Array(5).fill(["scheduler", "gateway"]).flat());
    expect(server.denials.map((d) => d.caller)).toEqual(Array(5).fill("gateway"));
  });

  it("finds the connection of a call through the calls wrapping it", () => {
    const session = {};
    const base = { stream: { session }, getAuthContext: () => null };
    expect(sessionOf(base)).toBe(session);
    expect(sessionOf({ nextCall: { nextCall: base } })).toBe(session);
    expect(sessionOf({ call: { nextCall: base } })).toBe(session);
    expect(sessionOf({ stream: {} })).toBeUndefined();
    expect(sessionOf({})).toBeUndefined();
  });

  it("opens health to every identity the CA issued", async () => {
    for (const identity of ["gateway", "operator", "scheduler"]) {
      const health = client(Health, server.address, channelCredentials(pki.material(identity)));
      expect((await health.check({ service: "" })).status, identity).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
  });

  it("is skipped when TLS is off, and refuses calls without identity when it is enforced", async () => {
    const open = await startServer(grpc.ServerCredentials.createInsecure(), false);
    const strict = await startServer(grpc.ServerCredentials.createInsecure(), true);
    try {
      const toOpen = client(DroneSchedulerService, open.address, grpc.credentials.createInsecure());
      expect(await rpcCode(toOpen.assignDrone(assignment("d-4")))).toBe("ok");
      expect(open.callers).toEqual([undefined]);
      expect(open.handled).toEqual(["d-4"]);
      const toStrict = client(DroneSchedulerService, strict.address, grpc.credentials.createInsecure());
      expect(await rpcCode(toStrict.assignDrone(assignment("d-5")))).toBe(Code.Unauthenticated);
      expect(strict.handled).toEqual([]);
      // A server-streaming call is refused the same way.
      const health = client(Health, strict.address, grpc.credentials.createInsecure());
      const watch = (async () => {
        for await (const _ of health.watch({ service: "" })) return "ok" as const;
        return "ended" as const;
      })();
      expect(await rpcCode(watch)).toBe(Code.Unauthenticated);
    } finally {
      await Promise.all([open.stop(), strict.stop()]);
    }
  });
});
