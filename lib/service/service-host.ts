/**
 * Hosts one service: binds its gRPC server at once (health NOT_SERVING), connects to NATS, lets
 * the service open its stores and build its handlers, then reports SERVING. Health follows the
 * NATS connection (NOT_SERVING while it is lost). `stop()` drains: NOT_SERVING, in-flight calls
 * finish within a bound, the service closes its background work, the NATS connection drains.
 *
 * The same host runs a service as a process (`runServiceMain`, from services/<name>/main.ts) and
 * in-process in tests (`startService`), so tests exercise exactly what production runs.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import type { Logger } from "pino";
import { Code } from "@connectrpc/connect";
import { unavailable } from "../grpc/errors.js";
import { natsCredentialsFromEnv } from "../nats/auth.js";
import { connectNats, drainQuietly } from "../nats/connection.js";
import { bindHost, envInt, envPrefix, type Env } from "./config.js";
import { GRPC_CODE_NAMES } from "../observability/metrics-labels.js";
import { startMetricsServer } from "../observability/metrics-server.js";
import { initTracing, withService } from "../observability/tracing.js";
import { createCommsLayer, type CommsLayer } from "../comms/layer.js";
import { startGrpcServer, type Registration, type RunningGrpcServer } from "./grpc-server.js";
import { processLogger, runProcessMain } from "./process-main.js";
import type { Registry } from "./registry.js";
import { authorizerOf } from "../security/authorization.js";

/** What a service's module gives the host. */
export interface ServiceModule {
  /** Short name, e.g. "account"; also the prefix of its environment variables (ACCOUNT_PORT). */
  readonly name: string;
  /** The gRPC port used when `<NAME>_PORT` is not set. */
  readonly defaultPort: number;
  /** The services it serves, known before its stores are open (health and reflection need them). */
  readonly services: readonly DescService[];
  /** Opens the service's stores and returns its handlers (and any background work). */
  create(ctx: ServiceContext): Promise<ServiceParts>;
}

export interface ServiceContext {
  readonly name: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly env: Env;
  readonly log: Logger;
  /** The communication layer of this service: clients of other services are made here. */
  readonly comms: CommsLayer;
}

export interface ServiceParts {
  /** One registration per entry of `ServiceModule.services`. */
  readonly registrations: readonly Registration[];
  /** Stops background work (consumers, timers); called after the gRPC server stopped. */
  close?(): Promise<void>;
}

export interface StartServiceOptions {
  /** Environment to read configuration from. Default: process.env. */
  env?: Env;
  /** NATS server URL(s); default NATS_URL of `env`, else nats://127.0.0.1:4222. */
  natsUrl?: string;
  /** gRPC port; default `<NAME>_PORT`, else the module's default. 0 picks a free port. */
  port?: number;
  /** Bind address; default `<NAME>_HOST`, else BIND_HOST, else GRPC_HOST, else 127.0.0.1 (config.ts `bindHost`). */
  host?: string;
  /** Logger; default a pino JSON logger at LOG_LEVEL (info). */
  log?: Logger;
  /**
   * The registry whose caller rules the server enforces; default the platform's
   * (lib/service/registry.ts). A test passes the registry plus an entry of its own.
   */
  registry?: Registry;
}

export interface RunningService {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly grpc: RunningGrpcServer;
  readonly nc: NatsConnection;
  /** Where its Prometheus metrics are served (`<NAME>_METRICS_PORT`), if they are. */
  readonly metricsUrl?: string;
  /** Resolves once the stores are open and health reports SERVING. */
  readonly ready: Promise<void>;
  /**
   * Drains and stops; safe to call more than once. Health says NOT_SERVING for `drainDelayMs`
   * (SHUTDOWN_DRAIN_DELAY_MS, default 500) before the server stops taking calls; in-flight calls
   * get `graceMs` (SHUTDOWN_GRACE_MS, default 5000) to finish.
   */
  stop(graceMs?: number, drainDelayMs?: number): Promise<void>;
}

/** Handlers that answer UNAVAILABLE until the real ones are installed. */
/** Codes that say the platform failed a call, rather than answered it. */
const PLATFORM_FAILURES: ReadonlySet<number> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

function deferredImpl(service: DescService, current: () => object | undefined): object {
  const impl: Record<string, unknown> = {};
  for (const method of service.methods) {
    impl[method.localName] = (...args: unknown[]) => {
      const target = current() as Record<string, (...a: unknown[]) => unknown> | undefined;
      const handler = target?.[method.localName];
      if (handler) return handler.apply(target, args);
      return notReady(method);
    };
  }
  return impl;
}

function notReady(method: DescMethod): unknown {
  const error = unavailable(`${method.parent.typeName} is starting; retry shortly`);
  if (method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming") {
    return (async function* () {
      throw error;
    })();
  }
  return Promise.reject(error);
}

export async function startService(module: ServiceModule, options: StartServiceOptions = {}): Promise<RunningService> {
  const env = options.env ?? process.env;
  const prefix = envPrefix(module.name);
  const log = options.log ?? processLogger(module.name, env);
  const tracing = initTracing(module.name, { env });
  for (const warning of tracing.warnings) log.warn(warning);
  const port = options.port ?? envInt(env, `${prefix}PORT`, module.defaultPort, { min: 0, max: 65535 });
  const host = options.host ?? bindHost(env, module.name);
  // A plaintext port serving grpc.health.v1 only, for probes that cannot do mutual TLS
  // (Kubernetes' gRPC probes); off unless `<NAME>_HEALTH_PORT` is set.
  const healthPortValue = env[`${prefix}HEALTH_PORT`]?.trim();
  const healthPort =
    healthPortValue === undefined || healthPortValue === "" || healthPortValue === "off"
      ? undefined
      : envInt(env, `${prefix}HEALTH_PORT`, 0, { min: 0, max: 65535 });
  const maxMessageBytes = envInt(env, "GRPC_MAX_MESSAGE_BYTES", 1024 * 1024, { min: 1024 });

  const impls = new Map<string, object>();
  const registrations = module.services.map((service) => ({
    service,
    impl: deferredImpl(service, () => impls.get(service.typeName)),
  }));
  const comms = await createCommsLayer({
    identity: module.name,
    env,
    ...(options.registry ? { authorize: authorizerOf(options.registry) } : {}),
    onDenied: (denial) => log.warn({ path: denial.path, caller: denial.caller, reason: denial.reason }, "call refused"),
  });
  const metricsPortValue = env[`${prefix}METRICS_PORT`]?.trim();
  const metrics =
    metricsPortValue === undefined || metricsPortValue === "" || metricsPortValue === "off"
      ? undefined
      : await startMetricsServer({ host, port: envInt(env, `${prefix}METRICS_PORT`, 0, { min: 0, max: 65535 }) });
  if (metrics) log.info({ url: metrics.url }, "metrics served");
  const grpc = await startGrpcServer(registrations, {
    security: comms.server(),
    host,
    port,
    ...(healthPort === undefined ? {} : { healthPort }),
    maxMessageBytes,
    onInternalError: (error, path) => log.error({ err: error, path }, "handler failed"),
    // One line per call: debug when it succeeded or answered about the request, warn when the
    // platform failed it. Only the method, code and duration: never the request's content.
    onCallEnd: (path, code, durationMs) => {
      const line = { method: path, code: GRPC_CODE_NAMES[code] ?? code, ms: Math.round(durationMs) };
      if (PLATFORM_FAILURES.has(code)) log.warn(line, "call failed");
      else log.debug(line, "call");
    },
    serviceName: module.name,
  });
  log.info({ address: grpc.address }, "gRPC server bound; NOT_SERVING until ready");

  const natsUrl = options.natsUrl ?? env["NATS_URL"]?.trim();
  let nc: NatsConnection;
  try {
    nc = await connectNats({
      name: module.name,
      ...(natsUrl ? { url: natsUrl } : {}),
      // Its own NATS user, allowed only the subjects it owns (lib/nats/permissions.ts).
      ...natsCredentialsFromEnv(env, module.name),
      waitOnFirstConnect: true,
    });
  } catch (error) {
    await grpc.shutdown(0);
    comms.close();
    await metrics?.close();
    throw error;
  }

  let parts: ServiceParts | undefined;
  let stopped = false;
  const ready = (async () => {
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    parts = await withService(module.name, () => module.create({ name: module.name, nc, js, jsm, env, log, comms }));
    for (const r of parts.registrations) impls.set(r.service.typeName, r.impl);
    if (!stopped) grpc.setServing(true);
    log.info({ address: grpc.address }, "SERVING");
  })();

  // Readiness follows the NATS connection: the stores live there.
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        grpc.setServing(false);
        log.warn("NATS connection lost: NOT_SERVING");
      } else if (status.type === "reconnect" && parts && !stopped) {
        grpc.setServing(true);
        log.info("NATS connection back: SERVING");
      }
    }
  })().catch(() => undefined);

  let stopping: Promise<void> | undefined;
  const stop = (
    graceMs = envInt(env, "SHUTDOWN_GRACE_MS", 5_000, { min: 0 }),
    drainDelayMs = envInt(env, "SHUTDOWN_DRAIN_DELAY_MS", 500, { min: 0 }),
  ): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      await grpc.shutdown(graceMs, drainDelayMs);
      await ready.catch(() => undefined);
      await parts?.close?.();
      comms.close();
      await drainQuietly(nc);
      await metrics?.close();
      log.info("stopped");
    })();
    return stopping;
  };

  ready.catch(async (error: unknown) => {
    log.error({ err: error }, "service failed to start");
  });

  return {
    name: module.name,
    address: grpc.address,
    port: grpc.port,
    grpc,
    nc,
    ready,
    stop,
    ...(metrics ? { metricsUrl: metrics.url } : {}),
  };
}

/**
 * The body of a service's main.ts: starts the service from the environment and stops it on
 * SIGTERM or SIGINT (exit 0 after draining). A failure to start exits 1 with the reason
 * (process-main.ts, the same for every process).
 */
export function runServiceMain(module: ServiceModule): void {
  runProcessMain({ name: module.name, start: (log) => startService(module, { log }) });
}
