/**
 * The Drone service's configuration, read once at start from environment variables. A bad value
 * stops the service at start with a message naming the variable.
 */
import { ConfigError, envInt, envNumber, type Env } from "../../lib/service/config.js";
import type { FlightTiming } from "./flight.js";

export interface GeoPoint {
  readonly latitude: number;
  readonly longitude: number;
}

export interface DroneConfig {
  /** How many drones the fleet has: `drone-0001` to `drone-<size>`. */
  readonly fleetSize: number;
  /** The centre of the fleet's home bases. */
  readonly homeBase: GeoPoint;
  /** How far (km) the drones' landing pads spread around the home base; 0 puts all at it. */
  readonly spreadKm: number;
  /** Payload limits cycled over the fleet: drone 1 gets the first, drone 2 the second, ... */
  readonly maxPayloadsKg: readonly number[];
  /** Cruising speed of every drone, in metres per second. */
  readonly speedMps: number;
  /** How long a drone claimed for a delivery without an assignment record stays claimed. */
  readonly claimLeaseMs: number;
  /** How often stale claims are looked for in the background; 0 turns the sweep off. */
  readonly reclaimIntervalMs: number;
  /** Every duration of a flight (legs and dwells) is divided by this: 600 turns 10 minutes into 1 s. */
  readonly timeScale: number;
  /** Time on the ground at the pickup location, in (unscaled) seconds. */
  readonly pickupSeconds: number;
  /** Time on the ground at the drop-off location, in (unscaled) seconds. */
  readonly dropoffSeconds: number;
  /** Location events per second of every drone in flight. */
  readonly telemetryHz: number;
  /** How long the flying instance's lease lasts without renewal before another takes over. */
  readonly simulatorLeaseMs: number;
}

export const DEFAULT_HOME_BASE: GeoPoint = { latitude: 47.6062, longitude: -122.3321 };
export const DEFAULT_MAX_PAYLOADS_KG: readonly number[] = [2.5, 5, 10];
/** Ids are `drone-` and four digits, so the fleet is at most 9999 drones. */
export const MAX_FLEET_SIZE = 9999;

/** The telemetry period in milliseconds (at least 1). */
export function tickMsOf(config: Pick<DroneConfig, "telemetryHz">): number {
  return Math.max(1, Math.round(1000 / config.telemetryHz));
}

export function flightTimingOf(config: DroneConfig): FlightTiming {
  return {
    timeScale: config.timeScale,
    pickupSeconds: config.pickupSeconds,
    dropoffSeconds: config.dropoffSeconds,
    tickMs: tickMsOf(config),
  };
}

export function readDroneConfig(env: Env): DroneConfig {
  return {
    fleetSize: envInt(env, "DRONE_FLEET_SIZE", 20, { min: 1, max: MAX_FLEET_SIZE }),
    homeBase: parseHomeBase(env["DRONE_HOME_BASE"]),
    spreadKm: envNumber(env, "DRONE_SPREAD_KM", 2, { min: 0, max: 50 }),
    maxPayloadsKg: parsePayloads(env["DRONE_MAX_PAYLOADS_KG"]),
    speedMps: envNumber(env, "DRONE_SPEED_MPS", 15, { min: 0.1, max: 200 }),
    claimLeaseMs: envInt(env, "DRONE_CLAIM_LEASE_MS", 30_000, { min: 1_000 }),
    reclaimIntervalMs: envInt(env, "DRONE_RECLAIM_INTERVAL_MS", 60_000, { min: 0 }),
    timeScale: envNumber(env, "DRONE_TIME_SCALE", 1, { min: 0.001, max: 1_000_000 }),
    pickupSeconds: envNumber(env, "DRONE_PICKUP_SECONDS", 30, { min: 0, max: 86_400 }),
    dropoffSeconds: envNumber(env, "DRONE_DROPOFF_SECONDS", 30, { min: 0, max: 86_400 }),
    telemetryHz: envNumber(env, "DRONE_TELEMETRY_HZ", 1, { min: 0.01, max: 50 }),
    simulatorLeaseMs: envInt(env, "DRONE_SIMULATOR_LEASE_MS", 5_000, { min: 200, max: 600_000 }),
  };
}

function parseHomeBase(raw: string | undefined): GeoPoint {
  const text = raw?.trim();
  if (!text) return DEFAULT_HOME_BASE;
  const parts = text.split(",").map((p) => p.trim());
  const [lat, lon] = parts.map(Number);
  if (parts.length !== 2 || lat === undefined || lon === undefined || !Number.isFinite(lat) || !Number.isFinite(lon)) {
    throw new ConfigError(`DRONE_HOME_BASE=${text} is not "latitude,longitude"`);
  }
  if (lat < -90 || lat > 90) throw new ConfigError(`DRONE_HOME_BASE=${text}: latitude must be between -90 and 90`);
  if (lon < -180 || lon > 180) throw new ConfigError(`DRONE_HOME_BASE=${text}: longitude must be between -180 and 180`);
  return { latitude: lat, longitude: lon };
}

function parsePayloads(raw: string | undefined): readonly number[] {
  const text = raw?.trim();
  if (!text) return DEFAULT_MAX_PAYLOADS_KG;
  const values = text.split(",").map((p) => Number(p.trim()));
  if (values.some((v) => !Number.isFinite(v) || v <= 0 || v > 1000)) {
    throw new ConfigError(`DRONE_MAX_PAYLOADS_KG=${text} must be a comma list of numbers greater than 0 and at most 1000`);
  }
  return values;
}
