/**
 * The communication layer of one caller identity (a service, the gateway, an operator's tool):
 * everything an interservice call needs, applied in one place so that no service re-implements
 * it. Clients made here get mutual TLS with the identity's certificate (unless INTERNAL_TLS=off),
 * round robin with outlier ejection over every instance of the target, per-target deadlines,
 * retries, circuit breaker and bulkhead (lib/resilience) reporting to the metrics, and tracing and
 * metrics of every call (lib/grpc's single client factory). Servers get the identity's
 * certificate, required client certificates and the caller authorization table (lib/security).
 */
import type { DescService } from "@bufbuild/protobuf";
import { credentials, ServerCredentials, type ChannelCredentials, type ServerInterceptor } from "@grpc/grpc-js";
import { balancingChannelOptions, readBalancingConfig } from "../grpc/load-balancing.js";
import { createClient, type Client } from "../grpc/index.js";
import { recordBulkheadRejection, recordRetry, setCircuitState } from "../observability/metrics.js";
import { createTargetPolicies, readResilienceConfig, type TargetPolicies } from "../resilience/policy.js";
import {
  authorizationInterceptor,
  channelCredentials,
  DEV_TLS_CHANNEL_OPTIONS,
  ensureDevPki,
  pkiDir,
  serverCredentials,
  tlsEnabled,
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

/** The layer of `identity`; with TLS on, makes the development certificates it needs first. */
export async function createCommsLayer(options: CommsLayerOptions): Promise<CommsLayer> {
  const tls = tlsEnabled(options.env);
  const material: IdentityMaterial | undefined = tls
    ? (await ensureDevPki(pkiDir(options.env), [options.identity])).material(options.identity)
    : undefined;
  const policies: TargetPolicies = createTargetPolicies(readResilienceConfig(options.env), {
    onRetry: (target, path) => recordRetry(target, path),
    onStateChange: (target, state) => setCircuitState(target, state),
    onBulkheadRejected: (target) => recordBulkheadRejection(target),
  });
  const balancing = balancingChannelOptions(readBalancingConfig(options.env));
  const clients = new Set<{ close(): void }>();
  /** The target's policy; its circuit state is reported from the first client on. */
  const policyOf = (target: ServiceName) => {
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
      const client = createClient(service, {
        address: settings.address ?? serviceAddress(options.env, target),
        target,
        credentials: credentialsFor(target),
        channelOptions: { ...balancing, ...(material ? DEV_TLS_CHANNEL_OPTIONS : {}) },
        ...(settings.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: settings.defaultTimeoutMs }),
        ...(settings.observe === false ? { observe: false } : {}),
        ...(settings.resilience === false ? {} : { policy: policyOf(target) }),
      });
      clients.add(client);
      return client;
    },
    server() {
      return {
        credentials: material ? serverCredentials(material) : ServerCredentials.createInsecure(),
        interceptors: [authorizationInterceptor({ enforce: tls, ...(options.onDenied ? { onDenied: options.onDenied } : {}) })],
      };
    },
    close() {
      for (const client of clients) client.close();
      clients.clear();
      policies.dispose();
    },
  };
}
