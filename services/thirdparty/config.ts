/**
 * The Third-party service's settings, read once at start from the environment. A bad value stops
 * the service at start with a message naming the variable.
 */
import { ConfigError, envInt, envNumber, type Env } from "../../lib/service/config.js";

/** The carriers used when `THIRDPARTY_CARRIERS` is not set. */
export const DEFAULT_CARRIERS: readonly string[] = ["Contoso Freight", "Fabrikam Logistics", "Northwind Haulage"];

export const MAX_CARRIER_NAME_LENGTH = 128;

export interface ThirdPartyConfig {
  /** The carriers a booking may go to, in configured order (the order is part of the choice rule). */
  readonly carriers: readonly string[];
  /** Lead time of a booking without a pickup window: the carrier comes this long after the booking. */
  readonly pickupLeadMinutes: number;
  /** Average road speed of a carrier between pickup and drop-off. */
  readonly speedKmh: number;
  /** Time a carrier adds for sorting and hand-over, besides driving. */
  readonly handlingMinutes: number;
  /**
   * Divides every duration of a booking (lead time, drive, handling, approach): 1 is real time,
   * 600 makes an hour's booking last 6 s. `THIRDPARTY_TIME_SCALE`, else `DRONE_TIME_SCALE`, so
   * one knob speeds drones and carriers alike.
   */
  readonly timeScale: number;
  /** How long before the pickup the carrier sets off towards it (before the time scale). */
  readonly approachMinutes: number;
  /** The carrier simulator's leader lease: one instance at a time publishes the carriers' progress. */
  readonly simulatorLeaseMs: number;
}

/** The time scale: `THIRDPARTY_TIME_SCALE`, else `DRONE_TIME_SCALE`, else 1. */
export function readTimeScale(env: Env): number {
  const range = { min: 0.001, max: 1_000_000 };
  if (env["THIRDPARTY_TIME_SCALE"]?.trim()) return envNumber(env, "THIRDPARTY_TIME_SCALE", 1, range);
  return envNumber(env, "DRONE_TIME_SCALE", 1, range);
}

/** `minutes` of booking time in real milliseconds, under the time scale. */
export function scaledMs(minutes: number, config: Pick<ThirdPartyConfig, "timeScale">): number {
  return (minutes * 60_000) / config.timeScale;
}

/** Parses a comma-separated carrier list; blank entries are ignored, duplicates refused. */
export function parseCarriers(raw: string | undefined, name = "THIRDPARTY_CARRIERS"): string[] {
  if (raw === undefined || raw.trim() === "") return [...DEFAULT_CARRIERS];
  const carriers = raw
    .split(",")
    .map((c) => c.trim())
    .filter((c) => c !== "");
  if (carriers.length === 0) throw new ConfigError(`${name}=${raw} names no carrier`);
  const seen = new Set<string>();
  for (const carrier of carriers) {
    if (carrier.length > MAX_CARRIER_NAME_LENGTH) {
      throw new ConfigError(`${name}: carrier name "${carrier.slice(0, 32)}..." is longer than ${MAX_CARRIER_NAME_LENGTH} characters`);
    }
    if (!/[A-Za-z0-9]/.test(carrier)) throw new ConfigError(`${name}: carrier name "${carrier}" has no letter or digit`);
    if (seen.has(carrier.toLowerCase())) throw new ConfigError(`${name}: carrier "${carrier}" is listed twice`);
    seen.add(carrier.toLowerCase());
  }
  return carriers;
}

export function readThirdPartyConfig(env: Env): ThirdPartyConfig {
  return {
    carriers: parseCarriers(env["THIRDPARTY_CARRIERS"]),
    pickupLeadMinutes: envInt(env, "THIRDPARTY_PICKUP_LEAD_MINUTES", 60, { min: 0, max: 7 * 24 * 60 }),
    speedKmh: envNumber(env, "THIRDPARTY_SPEED_KMH", 40, { min: 1, max: 1000 }),
    handlingMinutes: envInt(env, "THIRDPARTY_HANDLING_MINUTES", 30, { min: 0, max: 7 * 24 * 60 }),
    timeScale: readTimeScale(env),
    approachMinutes: envInt(env, "THIRDPARTY_APPROACH_MINUTES", 15, { min: 0, max: 7 * 24 * 60 }),
    simulatorLeaseMs: envInt(env, "THIRDPARTY_SIMULATOR_LEASE_MS", 5_000, { min: 200, max: 600_000 }),
  };
}
