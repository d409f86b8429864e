/**
 * The gRPC server every service runs: its own services, `grpc.health.v1` (NOT_SERVING until the
 * service says it is ready, and again while it drains) and server reflection, with a message size
 * limit, bound on one address. Graceful shutdown lets in-flight calls finish within a bound.
 */
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { addService, type ServiceImpl } from "../grpc/index.js";
import type { ServerSecurity } from "../comms/layer.js";
import { HealthService, type ServingStatus } from "./health.js";
import { addReflection } from "./reflection.js";

/** One service and its handlers, ready to register. */
export interface Registration {
  readonly service: DescService;
  readonly impl: object;
}

/** Pairs a service with its handlers, checked by the compiler. */
export function registration<S extends DescService>(service: S, impl: ServiceImpl<S>): Registration {
  return { service, impl };
}

export interface GrpcServerOptions {
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Largest request or response accepted, in bytes. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Called with every error a handler throws that is not a ConnectError (a bug). */
  onInternalError?: (error: unknown, path: string) => void;
  /** The serving service's name, for its spans when several services share a process. */
  serviceName?: string;
  /** Called once per call with its final code and duration (request logs). */
  onCallEnd?: (path: string, code: number, durationMs: number) => void;
  /** Credentials and interceptors (mutual TLS, caller authorization); default plaintext, open. */
  security?: ServerSecurity;
  /**
   * A second port, plaintext, serving only grpc.health.v1 with the same statuses: for probes that
   * cannot present a client certificate (Kubernetes' native gRPC probes). Unset: none.
   */
  healthPort?: number;
}

export interface RunningGrpcServer {
  readonly server: grpc.Server;
  readonly host: string;
  readonly port: number;
  /** host:port, for clients. */
  readonly address: string;
  /** The plaintext health-only port, when `healthPort` was given. */
  readonly healthPort?: number;
  /** Sets the health of the server ("") and of every registered service. */
  setServing(serving: boolean): void;
  /**
   * Reports NOT_SERVING and keeps answering for `drainDelayMs` (so health-checking clients and
   * balancers move away), then stops taking new calls, lets in-flight calls finish for up to
   * `graceMs`, and cancels what is left.
   */
  shutdown(graceMs?: number, drainDelayMs?: number): Promise<void>;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** The health service name that is SERVING while the process runs (liveness, not readiness). */
export const LIVENESS_SERVICE = "liveness";

export async function startGrpcServer(registrations: readonly Registration[], options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    interceptors: options.security?.interceptors ?? [],
  });
  for (const { service, impl } of registrations) {
    addService(server, service, impl as ServiceImpl<DescService>, {
      onError: (error, ctx) => options.onInternalError?.(error, ctx.path),
      ...(options.serviceName === undefined ? {} : { serviceName: options.serviceName }),
      ...(options.onCallEnd === undefined
        ? {}
        : { onCallEnd: (ctx, code, durationMs) => options.onCallEnd?.(ctx.path, code, durationMs) }),
    });
  }
  const names = ["", ...registrations.map((r) => r.service.typeName)];
  const health = new HealthService({
    ...Object.fromEntries(names.map((n) => [n, "NOT_SERVING" satisfies ServingStatus])),
    // SERVING for as long as the process answers at all, whatever its readiness: the name a
    // liveness probe checks, so that a lost NATS connection (NOT_SERVING) does not get the
    // process restarted.
    [LIVENESS_SERVICE]: "SERVING",
  });
  health.addToServer(server);
  addReflection(server, registrations.map((r) => r.service));

  const host = options.host ?? "127.0.0.1";
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.port}`, options.security?.credentials ?? grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });

  // Health only, no interceptors: the statuses are all it tells, and it takes no other call.
  const healthServer = options.healthPort === undefined ? undefined : new grpc.Server();
  let healthPort: number | undefined;
  if (healthServer !== undefined) {
    health.addToServer(healthServer);
    try {
      healthPort = await new Promise<number>((resolve, reject) => {
        healthServer.bindAsync(`${host}:${options.healthPort}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
          error ? reject(error) : resolve(bound),
        );
      });
    } catch (error) {
      server.forceShutdown();
      throw error;
    }
  }

  const setServing = (serving: boolean): void => {
    for (const name of names) health.setStatus(name, serving ? "SERVING" : "NOT_SERVING");
  };

  const closeGracefully = (graceMs: number, done: () => void): void => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      done();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      done();
    });
  };

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 5_000, drainDelayMs = 0): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      setServing(false);
      setTimeout(
        () =>
          closeGracefully(graceMs, () => {
            healthServer?.forceShutdown();
            resolve();
          }),
        drainDelayMs,
      );
    });
    return stopping;
  };

  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return { server, host, port, address, ...(healthPort === undefined ? {} : { healthPort }), setServing, shutdown };
}
