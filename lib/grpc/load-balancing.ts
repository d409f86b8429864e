// Spreading a client's calls over every instance of a service: the address may list several
// instances (`127.0.0.1:7055,127.0.0.1:7155`) or name a DNS name with several records; the channel
// balances round robin over the instances it can reach, and outlier detection ejects an instance
// whose calls keep failing while its peers succeed, taking it back after a growing pause.

import type { ChannelOptions } from "@grpc/grpc-js";
import { envInt, type Env } from "../service/config.js";

/** The grpc-js target of an address: a comma-separated list becomes an `ipv4:`/`ipv6:` list. */
export function channelTarget(address: string): string {
  const parts = address
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length <= 1) return parts[0] ?? address;
  const ipv6 = parts.every((part) => part.startsWith("["));
  const ipv4 = parts.every((part) => /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(part) || /^localhost:\d+$/.test(part));
  if (ipv6) return `ipv6:${parts.join(",")}`;
  if (ipv4) return `ipv4:${parts.map((part) => part.replace(/^localhost:/, "127.0.0.1:")).join(",")}`;
  throw new Error(`"${address}": a list of instances must be IPv4 (host:port) or IPv6 ([host]:port) addresses`);
}

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export interface BalancingConfig {
  /** How often instances' failure ratios are evaluated. */
  readonly intervalMs: number;
  /** First ejection time; it grows with each ejection of the same instance. */
  readonly baseEjectionMs: number;
  /** Failure percentage above which an instance is ejected. */
  readonly failurePercent: number;
  /** Calls an instance must have had in an interval to be judged. */
  readonly minimumCalls: number;
}

export const DEFAULT_BALANCING: BalancingConfig = {
  intervalMs: 1_000,
  baseEjectionMs: 5_000,
  failurePercent: 50,
  minimumCalls: 10,
};

/** The balancing settings from RPC_OUTLIER_* environment variables, over the defaults. */
export function readBalancingConfig(env: Env): BalancingConfig {
  return {
    intervalMs: envInt(env, "RPC_OUTLIER_INTERVAL_MS", DEFAULT_BALANCING.intervalMs, { min: 10 }),
    baseEjectionMs: envInt(env, "RPC_OUTLIER_BASE_EJECTION_MS", DEFAULT_BALANCING.baseEjectionMs, { min: 10 }),
    failurePercent: envInt(env, "RPC_OUTLIER_FAILURE_PERCENT", DEFAULT_BALANCING.failurePercent, { min: 1, max: 100 }),
    minimumCalls: envInt(env, "RPC_OUTLIER_MIN_CALLS", DEFAULT_BALANCING.minimumCalls, { min: 1 }),
  };
}

/**
 * Channel options for round robin with outlier detection. At most half the instances are ejected
 * at once, so a failure every instance shares (a dependency down) does not empty the pool.
 */
export function balancingChannelOptions(config: BalancingConfig = DEFAULT_BALANCING): ChannelOptions {
  const serviceConfig = {
    loadBalancingConfig: [
      {
        outlier_detection: {
          interval: duration(config.intervalMs),
          base_ejection_time: duration(config.baseEjectionMs),
          max_ejection_time: duration(config.baseEjectionMs * 6),
          max_ejection_percent: 50,
          failure_percentage_ejection: {
            threshold: config.failurePercent,
            enforcement_percentage: 100,
            minimum_hosts: 2,
            request_volume: config.minimumCalls,
          },
          child_policy: [{ round_robin: {} }],
        },
      },
    ],
  };
  return { "grpc.service_config": JSON.stringify(serviceConfig) };
}
