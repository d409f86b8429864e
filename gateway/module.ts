/**
 * Starting and stopping the gateway: settings, signing secret, internal clients and listeners.
 */
import { DeliveryApiService } from "../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import type { Env } from "../lib/service/config.js";
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { authenticate, authInterceptor, setAccount } from "./auth.js";
import { readGatewayConfig, type GatewayConfig } from "./config.js";
import { loadOrCreateDevSecret } from "./dev-secret.js";
import { createInternalClients } from "./internal-clients.js";
import { restHandler } from "./rest/handler.js";
import { startListeners } from "./server.js";
import { deliveryApiHandlers } from "./v1/handlers.js";
import { v1RestSuccess } from "./v1/rest-success.js";

export interface StartGatewayOptions {
  /** Settings as environment variables (see config.ts); defaults to process.env. */
  readonly env?: Env;
  /** Overrides of single settings, e.g. `{ port: 0, grpcPort: 0 }` in tests. */
  readonly config?: Partial<GatewayConfig>;
}

export interface RunningGateway {
  /** Connect and gRPC-Web base URL. */
  readonly url: string;
  /** gRPC (h2c) base URL. */
  readonly grpcUrl: string;
  /** True when tokens are checked with the generated development secret. */
  readonly usesDevSecret: boolean;
  close(): Promise<void>;
}

export async function startGateway(options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const config: GatewayConfig = { ...readGatewayConfig(options.env ?? process.env), ...options.config };
  const secret = config.jwtSecret ?? loadOrCreateDevSecret(config.devSecretFile);
  const clients = createInternalClients({ ingestion: config.ingestionAddress, delivery: config.deliveryAddress });
  try {
    // One implementation serves both the Connect router and REST.
    const handlers = deliveryApiHandlers({ clients, callTimeoutMs: config.callTimeoutMs });
    const rest = restHandler({
      service: DeliveryApiService,
      implementation: handlers as unknown as ServiceImpl<DescService>,
      authenticate: (headers) => authenticate(headers, secret),
      setAccount: (ctx, account) => setAccount(ctx.values, account),
      successOf: v1RestSuccess,
    });
    const listeners = await startListeners({
      host: config.host,
      port: config.port,
      grpcPort: config.grpcPort,
      interceptors: [authInterceptor(secret)],
      routes: (router) => {
        router.service(DeliveryApiService, handlers);
      },
      rest,
    });
    return {
      url: listeners.url,
      grpcUrl: listeners.grpcUrl,
      usesDevSecret: config.jwtSecret === undefined,
      async close() {
        await listeners.close();
        clients.close();
      },
    };
  } catch (error) {
    clients.close();
    throw error;
  }
}
