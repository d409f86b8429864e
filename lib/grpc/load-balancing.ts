// Spreading a client's calls over every instance of a service: the address may list several
// instances (`127.0.0.1:7055,127.0.0.1:7155`) or name a DNS name with several records. By default
// each call goes to the cheaper of two instances drawn at random, cost = peak-EWMA latency ×
// (outstanding calls + 1) (`p2c_ewma`, p2c-ewma.ts); RPC_LB_POLICY=round_robin takes turns instead.
// Either way outlier detection wraps the policy and ejects an instance whose calls keep failing
// while its peers succeed, taking it back after a growing pause.

import type { ChannelOptions } from "@grpc/grpc-js";
import { envInt, envString, type Env } from "../service/config.js";
import { DEFAULT_DECAY_MS, DEFAULT_RTT_MS, P2C_EWMA_POLICY, registerP2cEwma } from "./p2c-ewma.js";

registerP2cEwma();

/** The policies a channel may balance with. */
export const BALANCING_POLICIES = [P2C_EWMA_POLICY, "round_robin"] as const;
export type BalancingPolicy = (typeof BALANCING_POLICIES)[number];

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
  /** How calls are spread over the instances: `p2c_ewma` (default) or `round_robin`. */
  readonly policy: BalancingPolicy;
  /** p2c_ewma: time constant of the latency estimate (its moving average and its decay). */
  readonly ewmaDecayMs: number;
  /** p2c_ewma: latency estimate of an instance before its first answer. */
  readonly defaultRttMs: number;
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
  policy: P2C_EWMA_POLICY,
  ewmaDecayMs: DEFAULT_DECAY_MS,
  defaultRttMs: DEFAULT_RTT_MS,
  intervalMs: 1_000,
  baseEjectionMs: 5_000,
  failurePercent: 50,
  minimumCalls: 10,
};

/** The balancing policy named by RPC_LB_POLICY (default p2c_ewma); anything else is refused. */
export function readBalancingPolicy(env: Env): BalancingPolicy {
  const value = envString(env, "RPC_LB_POLICY", DEFAULT_BALANCING.policy).trim();
  const policy = BALANCING_POLICIES.find((name) => name === value);
  if (policy === undefined) throw new Error(`RPC_LB_POLICY="${value}": must be one of ${BALANCING_POLICIES.join(", ")}`);
  return policy;
}

/** The balancing settings from RPC_LB_* and RPC_OUTLIER_* environment variables, over the defaults. */
export function readBalancingConfig(env: Env): BalancingConfig {
  return {
    policy: readBalancingPolicy(env),
    ewmaDecayMs: envInt(env, "RPC_LB_EWMA_DECAY_MS", DEFAULT_BALANCING.ewmaDecayMs, { min: 1 }),
    defaultRttMs: envInt(env, "RPC_LB_DEFAULT_RTT_MS", DEFAULT_BALANCING.defaultRttMs, { min: 1 }),
    intervalMs: envInt(env, "RPC_OUTLIER_INTERVAL_MS", DEFAULT_BALANCING.intervalMs, { min: 10 }),
    baseEjectionMs: envInt(env, "RPC_OUTLIER_BASE_EJECTION_MS", DEFAULT_BALANCING.baseEjectionMs, { min: 10 }),
    failurePercent: envInt(env, "RPC_OUTLIER_FAILURE_PERCENT", DEFAULT_BALANCING.failurePercent, { min: 1, max: 100 }),
    minimumCalls: envInt(env, "RPC_OUTLIER_MIN_CALLS", DEFAULT_BALANCING.minimumCalls, { min: 1 }),
  };
}

/**
 * Channel options for the configured policy under outlier detection. At most half the instances
 * are ejected at once, so a failure every instance shares (a dependency down) does not empty the
 * pool. `latency: false` makes p2c_ewma weigh outstanding calls only: for channels that carry long
 * streams, whose duration says nothing of an instance's speed.
 */
export function balancingChannelOptions(config: BalancingConfig = DEFAULT_BALANCING, opts: { latency?: boolean } = {}): ChannelOptions {
  const child =
    config.policy === P2C_EWMA_POLICY
      ? { [P2C_EWMA_POLICY]: { decay_ms: config.ewmaDecayMs, default_rtt_ms: config.defaultRttMs, latency: opts.latency !== false } }
      : { round_robin: {} };
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
          child_policy: [child],
        },
      },
    ],
  };
  return { "grpc.service_config": JSON.stringify(serviceConfig) };
}
