/**
 * The fleet, created on first start. Seeding creates only missing drones: a restart, or a second
 * instance starting at the same moment, changes nothing (each drone is a create-only write).
 *
 * Drone n (1-based) is `drone-000n`; its landing pad (home base and first position) lies on a
 * sunflower spiral around the configured home base within `spreadKm`, so pads are spread evenly
 * and the layout is the same on every instance. Payload limits cycle over `maxPayloadsKg`.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { LocationSchema, type Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { DroneSchema, DroneStatus, FlightStage, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { isRevisionConflict } from "../../lib/store/proto-kv-store.js";
import type { DroneConfig } from "./config.js";
import { destination } from "./geo.js";
import type { DroneStore } from "./store.js";

const GOLDEN_ANGLE_DEGREES = 137.50776405003785;

export function droneIdOf(n: number): string {
  return `drone-${String(n).padStart(4, "0")}`;
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

/** The landing pad of drone `n` of a fleet of `size`. */
export function padLocation(config: Pick<DroneConfig, "homeBase" | "spreadKm" | "fleetSize">, n: number): Location {
  const radiusKm = config.spreadKm * Math.sqrt((n - 0.5) / config.fleetSize);
  const point = radiusKm === 0 ? config.homeBase : destination(config.homeBase, (n * GOLDEN_ANGLE_DEGREES) % 360, radiusKm);
  return create(LocationSchema, { latitude: round6(point.latitude), longitude: round6(point.longitude), altitude: 0 });
}

/** The drones of a fresh fleet, as they are when first created. */
export function plannedFleet(config: DroneConfig): Drone[] {
  const now = timestampNow();
  return Array.from({ length: config.fleetSize }, (_, i) => {
    const n = i + 1;
    const pad = padLocation(config, n);
    return create(DroneSchema, {
      droneId: droneIdOf(n),
      status: DroneStatus.AVAILABLE,
      stage: FlightStage.IDLE,
      position: pad,
      homeBase: pad,
      maxPayloadKg: config.maxPayloadsKg[i % config.maxPayloadsKg.length]!,
      speedMps: config.speedMps,
      batteryPercent: 100,
      deliveryId: "",
      updateTime: now,
    });
  });
}

/** Creates the drones that are missing (on the ground, no flight yet); returns how many it created. */
export async function seedFleet(store: DroneStore, config: DroneConfig): Promise<number> {
  const existing = new Set(await store.droneIds());
  let created = 0;
  for (const drone of plannedFleet(config)) {
    if (existing.has(drone.droneId)) continue;
    try {
      await store.createDrone({ drone, flight: undefined });
      created++;
    } catch (error) {
      // Created in the meantime by another instance starting at the same moment.
      if (!isRevisionConflict(error) && !/exists/i.test((error as Error).message ?? "")) throw error;
    }
  }
  return created;
}
