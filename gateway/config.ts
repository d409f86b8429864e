/**
 * The gateway's settings, read from the environment with defaults. A bad value stops the gateway
 * at start with a message naming the variable.
 */
import { DEFAULT_BIND_HOST, envInt, envString, type Env } from "../lib/service/config.js";
import { STREAMS } from "../lib/nats/streams.js";
import { serviceAddress } from "../lib/service/ports.js";
import { gatewayEntry, PLATFORM_REGISTRY } from "../lib/service/registry.js";
import { DEFAULT_MAX_TOKEN_LIFETIME_S } from "./tokens.js";

export interface GatewayConfig {
  /** Interface both listeners bind to: GATEWAY_HOST, else BIND_HOST, else 127.0.0.1. */
  readonly host: string;
  /** HTTP/1.1 port: Connect (JSON, binary, GET) and gRPC-Web. 0 picks a free port. */
  readonly port: number;
  /** Cleartext HTTP/2 (h2c) port: gRPC. 0 picks a free port. */
  readonly grpcPort: number;
  /** Timeout of each internal call when the caller sets none. */
  readonly callTimeoutMs: number;
  /** Admin port (HTTP/1.1, loopback by default): `/metrics`. 0 picks a free port. */
  readonly adminPort: number;
  /** Interface the admin port binds to. */
  readonly adminHost: string;
  /** How long the fingerprint of a scheduled request is kept per (owner, idempotency key). */
  readonly idempotencyTtlMs: number;
  /** Longest accepted bearer-token lifetime (`exp - iat`), in seconds. */
  readonly maxTokenLifetimeS: number;
  /** Secret of the HS256 bearer tokens; undefined means the development secret. */
  readonly jwtSecret: string | undefined;
  /** Where the development secret is kept. */
  readonly devSecretFile: string;
  /** Origins browsers may call from (`GATEWAY_CORS_ORIGINS`, comma-separated, `*` for any); empty: none. */
  readonly corsOrigins: readonly string[];
  /** Calls each client may make per rate-limit window; 0 turns the limit off. */
  readonly rateLimitRequests: number;
  readonly rateLimitWindowSeconds: number;
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number;
  readonly ingestionAddress: string;
  readonly deliveryAddress: string;
  /** The Drone service, read by the operators' fleet API. */
  readonly droneAddress: string;
}

export const DEFAULT_DEV_SECRET_FILE = ".run/gateway-dev-secret";

/** The public HTTP/1.1 port and gRPC (h2c) port by default: the gateway's registry entry. */
export const DEFAULT_GATEWAY_PORT: number = gatewayEntry(PLATFORM_REGISTRY)!.port;
export const DEFAULT_GATEWAY_GRPC_PORT: number = gatewayEntry(PLATFORM_REGISTRY)!.grpcPort;

/** The admin port is the public port + 1000 by default, as services serve metrics on their gRPC port + 1000. */
export const ADMIN_PORT_OFFSET = 1000;

export function readGatewayConfig(env: Env): GatewayConfig {
  const secret = env.GATEWAY_JWT_SECRET?.trim();
  const port = envInt(env, "GATEWAY_PORT", DEFAULT_GATEWAY_PORT, { min: 0, max: 65535 });
  return {
    host: envString(env, "GATEWAY_HOST", envString(env, "BIND_HOST", DEFAULT_BIND_HOST)),
    port,
    grpcPort: envInt(env, "GATEWAY_GRPC_PORT", DEFAULT_GATEWAY_GRPC_PORT, { min: 0, max: 65535 }),
    callTimeoutMs: envInt(env, "GATEWAY_CALL_TIMEOUT_MS", 5000, { min: 1 }),
    adminPort: envInt(env, "GATEWAY_ADMIN_PORT", port === 0 || port + ADMIN_PORT_OFFSET > 65535 ? 0 : port + ADMIN_PORT_OFFSET, { min: 0, max: 65535 }),
    adminHost: envString(env, "GATEWAY_ADMIN_HOST", "127.0.0.1"),
    idempotencyTtlMs: envInt(env, "GATEWAY_IDEMPOTENCY_TTL_MS", STREAMS.DELIVERY_REQUESTS.duplicateWindowMs, { min: 1_000 }),
    maxTokenLifetimeS: envInt(env, "GATEWAY_MAX_TOKEN_LIFETIME_S", DEFAULT_MAX_TOKEN_LIFETIME_S, { min: 1 }),
    jwtSecret: secret ? secret : undefined,
    devSecretFile: envString(env, "GATEWAY_DEV_SECRET_FILE", DEFAULT_DEV_SECRET_FILE),
    corsOrigins: (env.GATEWAY_CORS_ORIGINS ?? "")
      .split(",")
      .map((origin) => origin.trim())
      .filter((origin) => origin !== ""),
    rateLimitRequests: envInt(env, "GATEWAY_RATE_LIMIT_REQUESTS", 600, { min: 0 }),
    rateLimitWindowSeconds: envInt(env, "GATEWAY_RATE_LIMIT_WINDOW_SECONDS", 60, { min: 1 }),
    maxBodyBytes: envInt(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024, { min: 1024 }),
    ingestionAddress: serviceAddress(env, "ingestion"),
    deliveryAddress: serviceAddress(env, "delivery"),
    droneAddress: serviceAddress(env, "drone"),
  };
}
