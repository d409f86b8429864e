/**
 * How many copies JetStream keeps of every stream and KV bucket of the platform.
 *
 *   NATS_REPLICAS   1 to 5 (JetStream's limit). Unset: 1. `make run` sets it for every process it
 *                   starts (default: the cluster size NATS_CLUSTER_SIZE, at most 3).
 *
 * A replica count above 1 needs a JetStream cluster of at least that many servers: a single
 * server refuses such a stream ("replicas > 1 not supported in non-clustered mode").
 *
 * The platform only ever raises replicas (ensureStreams, openBucket): a stream or bucket that has
 * more copies than asked (an operator raised it) keeps them.
 */
import { ConfigError, type Env } from "../service/config.js";

/** JetStream allows 1 to 5 replicas per stream. */
export const MAX_REPLICAS = 5;

/** Throws a RangeError unless `replicas` is a whole number from 1 to 5. */
export function assertReplicas(replicas: number, what: string): number {
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) {
    throw new RangeError(`${what}: replicas must be a whole number from 1 to ${MAX_REPLICAS}, got ${String(replicas)}`);
  }
  return replicas;
}

/**
 * NATS_REPLICAS from `env` (default 1). Throws ConfigError with the variable and the allowed range
 * when it is not a whole number from 1 to 5.
 */
export function natsReplicasFromEnv(env: Env = process.env): number {
  const raw = env["NATS_REPLICAS"]?.trim();
  if (!raw) return 1;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > MAX_REPLICAS) {
    throw new ConfigError(
      `NATS_REPLICAS=${raw} is not a whole number from 1 to ${MAX_REPLICAS} ` +
        "(copies JetStream keeps of every stream and bucket; at most the number of nats-servers in the cluster)",
    );
  }
  return value;
}
