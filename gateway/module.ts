/**
 * Starting and stopping the gateway: settings, signing secret, internal clients and listeners.
 */
import type { Logger } from "pino";
import type { Env } from "../lib/service/config.js";
import { authenticateCallerNow, authInterceptor, setCaller } from "./auth.js";
import { readGatewayConfig, type GatewayConfig } from "./config.js";
import { CONSOLE_ASSET_PREFIX, consoleFiles, DEFAULT_CONSOLE_DIR } from "./console-files.js";
import { loadOrCreateDevSecret } from "./dev-secret.js";
import { natsSharedCounter } from "./edge/shared-rate-limit.js";
import { natsIdempotencyStore, uncheckedIdempotency } from "./idempotency.js";
import { createInternalClients } from "./internal-clients.js";
import { requestRulesInterceptor } from "./request-rules.js";
import { OPENAPI_DOCUMENT } from "./openapi/document.js";
import { openApiEndpoint, OPENAPI_PATH } from "./openapi/endpoint.js";
import { createCommsLayer } from "../lib/comms/layer.js";
import { startMetricsServer } from "../lib/observability/metrics-server.js";
import { initTracing } from "../lib/observability/tracing.js";
import { tracingInterceptor } from "./observability.js";
import { createReadinessProbe } from "./readiness.js";
import { restHandler } from "./rest/handler.js";
import { startListeners, type RestMount } from "./server.js";
import { API_VERSIONS } from "./versions.js";

export interface StartGatewayOptions {
  /** Settings as environment variables (see config.ts); defaults to process.env. */
  readonly env?: Env;
  /** Request and error lines; none when unset. */
  readonly log?: Logger;
  /** Overrides of single settings, e.g. `{ port: 0, grpcPort: 0 }` in tests. */
  readonly config?: Partial<GatewayConfig>;
}

export interface RunningGateway {
  /** Connect and gRPC-Web base URL. */
  readonly url: string;
  /** gRPC (h2c) base URL. */
  readonly grpcUrl: string;
  /** The admin port's Prometheus scrape URL, e.g. http://127.0.0.1:9080/metrics (never on the public ports). */
  readonly metricsUrl: string;
  /** True when tokens are checked with the generated development secret. */
  readonly usesDevSecret: boolean;
  close(): Promise<void>;
}

export async function startGateway(options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const config: GatewayConfig = { ...readGatewayConfig(options.env ?? process.env), ...options.config };
  const secret = config.jwtSecret ?? loadOrCreateDevSecret(config.devSecretFile);
  const env = options.env ?? process.env;
  initTracing("gateway", { env });
  const comms = await createCommsLayer({ identity: "gateway", env });
  const dependencies = { ingestion: config.ingestionAddress, delivery: config.deliveryAddress };
  // The Drone service is read only by the operators' fleet API; /readyz does not wait for it.
  const clients = createInternalClients(comms, { ...dependencies, drone: config.droneAddress });
  const readiness = createReadinessProbe(comms, dependencies);
  // Fingerprints of scheduled requests live in NATS (idempotency.ts); without NATS_URL, no check.
  const idempotency = env["NATS_URL"]?.trim()
    ? natsIdempotencyStore({ env, ttlMs: config.idempotencyTtlMs, log: options.log })
    : uncheckedIdempotency;
  if (idempotency === uncheckedIdempotency) options.log?.warn("NATS_URL is not set: an Idempotency-Key reused with another request is not detected");
  // The rate limit is one for every gateway instance, counted in NATS (edge/shared-rate-limit.ts);
  // without NATS_URL (or the limit off), each instance counts alone.
  const sharedCounter =
    env["NATS_URL"]?.trim() && config.rateLimitRequests > 0
      ? natsSharedCounter({ env, windowSeconds: config.rateLimitWindowSeconds, log: options.log })
      : undefined;
  const closeClients = async () => {
    clients.close();
    readiness.close();
    comms.close();
    await Promise.all([idempotency.close(), sharedCounter?.close()]);
  };
  try {
    // Every version is served side by side; one implementation per version serves both its
    // Connect router entry and its REST routes.
    const deps = { clients, callTimeoutMs: config.callTimeoutMs, idempotency };
    const versions = API_VERSIONS.map((version) => ({ version, handlers: version.handlers(deps) }));
    const rest: RestMount[] = versions.map(({ version, handlers }) => ({
      prefix: version.restPrefix,
      handler: restHandler({
        service: version.service,
        implementation: handlers,
        authenticate: (headers) => authenticateCallerNow(headers, secret, config.maxTokenLifetimeS),
        setAccount: (ctx, caller) => setCaller(ctx.values, caller),
        successOf: version.restSuccess,
        maxBodyBytes: config.maxBodyBytes,
      }),
    }));
    // Written from the contracts by `buf generate` (gen/openapi/).
    const openApi = openApiEndpoint(OPENAPI_DOCUMENT);
    // The web console's static files (public; its API calls carry the token).
    const consoleSite = consoleFiles(env["GATEWAY_CONSOLE_DIR"]?.trim() || DEFAULT_CONSOLE_DIR);
    const listeners = await startListeners({
      host: config.host,
      port: config.port,
      grpcPort: config.grpcPort,
      interceptors: [tracingInterceptor(), authInterceptor(secret, config.maxTokenLifetimeS), requestRulesInterceptor()],
      routes: (router) => {
        for (const { version, handlers } of versions) router.service(version.service, handlers);
      },
      rest,
      ...(options.log ? { log: options.log } : {}),
      edge: {
        cors: { origins: config.corsOrigins },
        rateLimit: {
          requests: config.rateLimitRequests,
          windowSeconds: config.rateLimitWindowSeconds,
          shared: sharedCounter?.current,
          log: options.log,
        },
        maxBodyBytes: config.maxBodyBytes,
      },
      prefixEndpoints: [{ prefix: CONSOLE_ASSET_PREFIX, handler: consoleSite.assets }],
      endpoints: {
        "/": consoleSite.index,
        [OPENAPI_PATH]: openApi,
        "/readyz": (req, res) => {
          readiness.check().then((report) => {
            res.statusCode = report.ready ? 200 : 503;
            res.setHeader("content-type", "application/json");
            res.end(req.method === "HEAD" ? "" : JSON.stringify({ status: report.ready ? "ready" : "not_ready", services: report.services }));
          }, () => res.destroy());
        },
      },
    });
    // Metrics are for the operator, not the public: their own port, like every service's.
    let admin: Awaited<ReturnType<typeof startMetricsServer>>;
    try {
      admin = await startMetricsServer({ host: config.adminHost, port: config.adminPort });
    } catch (error) {
      await listeners.close();
      throw error;
    }
    return {
      url: listeners.url,
      grpcUrl: listeners.grpcUrl,
      metricsUrl: admin.url,
      usesDevSecret: config.jwtSecret === undefined,
      async close() {
        await Promise.all([listeners.close(), admin.close()]);
        await closeClients();
      },
    };
  } catch (error) {
    await closeClients();
    throw error;
  }
}
