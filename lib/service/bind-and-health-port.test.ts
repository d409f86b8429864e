// Where a service listens (bind host settings) and the plaintext health-only port that probes
// without a client certificate (Kubernetes' gRPC probes) use beside the mutual-TLS port.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { readGatewayConfig } from "../../gateway/config.js";
import { createCommsLayer, type CommsLayer } from "../comms/layer.js";
import { createClient, type Client } from "../grpc/index.js";
import { bindHost } from "./config.js";
import { LIVENESS_SERVICE, startGrpcServer, type RunningGrpcServer } from "./grpc-server.js";
import { serviceAddress } from "./ports.js";

async function rpcCode(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (error) {
    if (error instanceof ConnectError) return error.code;
    throw error;
  }
}

describe("bind host", () => {
  it("is <NAME>_HOST, else BIND_HOST, else GRPC_HOST, else loopback", () => {
    expect(bindHost({}, "delivery")).toBe("127.0.0.1");
    expect(bindHost({ GRPC_HOST: "10.0.0.5" }, "delivery")).toBe("10.0.0.5");
    expect(bindHost({ GRPC_HOST: "10.0.0.5", BIND_HOST: "0.0.0.0" }, "delivery")).toBe("0.0.0.0");
    expect(bindHost({ BIND_HOST: "0.0.0.0", DELIVERY_HOST: "::" }, "delivery")).toBe("::");
    expect(bindHost({ BIND_HOST: "0.0.0.0", DELIVERY_HOST: "::" }, "account")).toBe("0.0.0.0");
  });

  it("the gateway keeps GATEWAY_HOST and also takes BIND_HOST; its admin port stays on loopback", () => {
    expect(readGatewayConfig({}).host).toBe("127.0.0.1");
    expect(readGatewayConfig({ BIND_HOST: "0.0.0.0" }).host).toBe("0.0.0.0");
    expect(readGatewayConfig({ BIND_HOST: "0.0.0.0", GATEWAY_HOST: "10.1.1.1" }).host).toBe("10.1.1.1");
    expect(readGatewayConfig({ BIND_HOST: "0.0.0.0" }).adminHost).toBe("127.0.0.1");
  });

  it("is independent of the address callers dial", () => {
    const env = { BIND_HOST: "0.0.0.0", DELIVERY_HOST: "0.0.0.0", DELIVERY_ADDRESS: "delivery.dronedelivery.svc:7055" };
    expect(serviceAddress(env, "delivery")).toBe("delivery.dronedelivery.svc:7055");
    expect(serviceAddress({ BIND_HOST: "0.0.0.0" }, "delivery")).toBe("127.0.0.1:7055");
    expect(readGatewayConfig(env).deliveryAddress).toBe("delivery.dronedelivery.svc:7055");
  });
});

describe("health-only plaintext port", () => {
  let root: string;
  let layer: CommsLayer;
  let server: RunningGrpcServer;
  const clients: Client<typeof Health>[] = [];
  const plaintext = (address: string) => {
    const c = createClient(Health, { address, credentials: grpc.credentials.createInsecure(), defaultTimeoutMs: 15_000 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "health-port-test-"));
    layer = await createCommsLayer({ identity: "drone", env: { INTERNAL_PKI_DIR: join(root, "pki") } });
    server = await startGrpcServer([{ service: DroneSchedulerService, impl: {} }], {
      security: layer.server(),
      host: "127.0.0.1",
      port: 0,
      healthPort: 0,
    });
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.shutdown(0);
    layer?.close();
    await rm(root, { recursive: true, force: true });
  });

  it("answers grpc.health.v1 without TLS with the server's statuses, while the main port requires mutual TLS", async () => {
    expect(server.healthPort).toBeGreaterThan(0);
    const health = plaintext(`127.0.0.1:${server.healthPort}`);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    server.setServing(true);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: DroneSchedulerService.typeName })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(await rpcCode(plaintext(server.address).check({ service: "" }))).toBe(Code.Unavailable);
  });

  it("answers SERVING for the liveness name whether or not the server is ready", async () => {
    const health = plaintext(`127.0.0.1:${server.healthPort}`);
    server.setServing(false);
    expect((await health.check({ service: LIVENESS_SERVICE })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    server.setServing(true);
  });

  it("serves nothing but health", async () => {
    const c = createClient(DroneSchedulerService, {
      address: `127.0.0.1:${server.healthPort}`,
      credentials: grpc.credentials.createInsecure(),
      defaultTimeoutMs: 15_000,
    });
    try {
      expect(await rpcCode(c.assignDrone({ deliveryId: "x" }))).toBe(Code.Unimplemented);
    } finally {
      c.close();
    }
  });

  it("goes NOT_SERVING with the server when it drains, then closes", async () => {
    const health = plaintext(`127.0.0.1:${server.healthPort}`);
    const stopping = server.shutdown(1_000, 300);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    await stopping;
    expect(await rpcCode(plaintext(`127.0.0.1:${server.healthPort}`).check({ service: "" }))).toBe(Code.Unavailable);
  });
});
