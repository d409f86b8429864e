/**
 * The communication layer of one caller identity (a service, the gateway, an operator's tool):
 * everything an interservice call needs, applied in one place so that no service re-implements
 * it. Clients made here get mutual TLS with the identity's certificate (unless INTERNAL_TLS=off),
 * balancing over every instance of the target (power of two choices over a latency EWMA, or round
 * robin, with outlier ejection: lib/grpc/load-balancing.ts), routing to a canary version of the
 * target beside the first (`<NAME>_CANARY_ADDRESS`, routing.ts), per-target deadlines,
 * retries, circuit breaker and bulkhead (lib/resilience) reporting to the metrics, and tracing and
 * metrics of every call (lib/grpc's single client factory). Servers get the identity's
 * certificate, required client certificates and the caller authorization table (lib/security).
 */
import type { DescService } from "@bufbuild/protobuf";
import { credentials, ServerCredentials, type ChannelCredentials, type ServerInterceptor } from "@grpc/grpc-js";
import { balancingChannelOptions, readBalancingConfig } from "../grpc/load-balancing.js";
import { createClient, type Client } from "../grpc/index.js";
import { canarySplit, hasStreams, readCanaryRoute, streamsApart } from "./routing.js";
import { recordBulkheadRejection, recordRetry, setCircuitState } from "../observability/metrics.js";
import { createTargetPolicies, readResilienceConfig, type TargetPolicies } from "../resilience/policy.js";
import {
  authorizationInterceptor,
  channelCredentials,
  loadInternalTls,
  serverCredentials,
  type AuthorizationInterceptorOptions,
  type Denial,
  type IdentityMaterial,
} from "../security/index.js";
import type { Env } from "../service/config.js";
import { serviceAddress, type ServiceName } from "../service/ports.js";

export interface CommsLayerOptions {
  /** Who calls and serves: a service name, `gateway` or `operator`. */
  readonly identity: string;
  readonly env: Env;
  /** Told of every call the authorization table refused. */
  readonly onDenied?: (denial: Denial) => void;
  /** The decision of its servers' authorization; default the platform's caller table. */
  readonly authorize?: AuthorizationInterceptorOptions["decide"];
}

export interface ClientSettings {
  /** Overrides the address (`<NAME>_ADDRESS`, a comma-separated list for several instances). */
  readonly address?: string;
  /** Timeout of calls that set none (before the method class's default applies). */
  readonly defaultTimeoutMs?: number;
  /** False: no spans or metrics (probes). */
  readonly observe?: boolean;
  /** False: no retries, breaker or bulkhead (probes, which must see the target as it is). */
  readonly resilience?: boolean;
  /** False: calls never go to the target's canary version (probes of the first version). */
  readonly canary?: boolean;
}

export interface ServerSecurity {
  readonly credentials: ServerCredentials;
  readonly interceptors: ServerInterceptor[];
}

export interface CommsLayer {
  readonly identity: string;
  /** True when calls use mutual TLS and servers check callers. */
  readonly tls: boolean;
  /** A client of `service` served by `target`, through the whole layer. */
  client<S extends DescService>(service: S, target: ServiceName, settings?: ClientSettings): Client<S>;
  /** Credentials and interceptors of a gRPC server serving as this identity. */
  server(): ServerSecurity;
  /** Closes every client made here and disposes the targets' policies. */
  close(): void;
}

/**
 * The layer of `identity`; with TLS on, loads its certificate first: from an external CA's files
 * (INTERNAL_TLS_CA_FILE, ..._CERT_FILE, ..._KEY_FILE), else the development PKI, made as needed.
 */
export async function createCommsLayer(options: CommsLayerOptions): Promise<CommsLayer> {
  const internalTls = await loadInternalTls(options.env, options.identity);
  const tls = internalTls !== undefined;
  const material: IdentityMaterial | undefined = internalTls?.material;
  const policies: TargetPolicies = createTargetPolicies(readResilienceConfig(options.env), {
    onRetry: (target, path) => recordRetry(target, path),
    onStateChange: (target, state) => setCircuitState(target, state),
    onBulkheadRejected: (target) => recordBulkheadRejection(target),
  });
  const balancingConfig = readBalancingConfig(options.env);
  const balancing = balancingChannelOptions(balancingConfig);
  const streamBalancing = balancingChannelOptions(balancingConfig, { latency: false });
  const clients = new Set<{ close(): void }>();
  /** The target's policy; its circuit state is reported from the first client on. */
  const policyOf = (target: string) => {
    const policy = policies.forTarget(target);
    setCircuitState(target, policy.state());
    return policy;
  };

  const credentialsFor = (target: ServiceName): ChannelCredentials =>
    material ? channelCredentials(material, { expectedServer: target }) : credentials.createInsecure();

  return {
    identity: options.identity,
    tls,
    client(service, target, settings = {}) {
      /** One channel to `address`; `name` labels its metrics and spans and keys its policy. */
      const channel = (address: string, name: string, latency: boolean) =>
        createClient(service, {
          address,
          target: name,
          credentials: credentialsFor(target),
          channelOptions: { ...(latency ? balancing : streamBalancing), ...(internalTls?.channelOptions(address) ?? {}) },
          ...(settings.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: settings.defaultTimeoutMs }),
          ...(settings.observe === false ? { observe: false } : {}),
          ...(settings.resilience === false ? {} : { policy: policyOf(name) }),
        });
      /** One version of the target: its streaming methods on a channel of their own. */
      const version = (address: string, name: string) =>
        hasStreams(service) ? streamsApart(service, channel(address, name, true), channel(address, name, false)) : channel(address, name, true);
      const stable = version(settings.address ?? serviceAddress(options.env, target), target);
      const canary = settings.canary === false ? undefined : readCanaryRoute(options.env, target);
      const client = canary === undefined ? stable : canarySplit(service, stable, version(canary.address, `${target}-canary`), canary.weightPercent);
      clients.add(client);
      return client;
    },
    server() {
      return {
        credentials: material ? serverCredentials(material) : ServerCredentials.createInsecure(),
        interceptors: [
          authorizationInterceptor({
            enforce: tls,
            ...(options.onDenied ? { onDenied: options.onDenied } : {}),
            ...(options.authorize ? { decide: options.authorize } : {}),
          }),
        ],
      };
    },
    close() {
      for (const client of clients) client.close();
      clients.clear();
      policies.dispose();
    },
  };
}
