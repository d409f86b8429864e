/**
 * What the bucket holds under `drone.<droneId>`: the drone (status, claim, stage and position as of
 * its last stored transition, and its fixed properties) together with its current or last flight
 * plan, in one value so a claim, a flight start, a stage transition or a turn home is one
 * revision-checked write.
 *
 * Encoding: JSON `{"v":1,"drone":<Drone in proto JSON>,"flight":<Flight>|null}`. A value that is
 * not JSON (it starts with another byte than `{`) is a bare binary `Drone`, as stored before
 * flights were planned: it reads as a drone without a flight.
 */
import { create, fromBinary, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { LocationSchema, type Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { DroneSchema, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { altitudeAt, isOver, positionAt, stageAt, type Flight, type Point } from "./flight.js";

export interface DroneRecord {
  readonly drone: Drone;
  /** The drone's current flight, or its last one (over: every transition applied); none yet. */
  readonly flight: Flight | undefined;
}

const VERSION = 1;
const OPEN_BRACE = 0x7b;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeDroneRecord(record: DroneRecord): Uint8Array {
  return encoder.encode(JSON.stringify({ v: VERSION, drone: toJson(DroneSchema, record.drone), flight: record.flight ?? null }));
}

export function decodeDroneRecord(data: Uint8Array): DroneRecord {
  if (data[0] !== OPEN_BRACE) return { drone: fromBinary(DroneSchema, data), flight: undefined };
  const parsed = JSON.parse(decoder.decode(data)) as { v?: unknown; drone?: unknown; flight?: unknown };
  if (parsed.v !== VERSION || typeof parsed.drone !== "object" || parsed.drone === null) {
    throw new Error(`not a drone record (version ${String(parsed.v)})`);
  }
  const flight = parsed.flight;
  if (flight !== null && flight !== undefined && (typeof flight !== "object" || !Array.isArray((flight as Flight).legs))) {
    throw new Error("drone record with a malformed flight");
  }
  return {
    drone: fromJson(DroneSchema, parsed.drone as JsonValue),
    flight: flight ? (flight as Flight) : undefined,
  };
}

/** A protobuf Location for a point, `altitudeM` metres above ground (0: on the ground). */
export function toLocation(p: Point, altitudeM = 0): Location {
  return create(LocationSchema, { latitude: p.latitude, longitude: p.longitude, altitude: altitudeM });
}

/** Where the drone is at `atMs`: from its flight plan, else its stored position (or home base). */
export function positionOf(record: DroneRecord, atMs: number): Point | undefined {
  if (record.flight) return positionAt(record.flight, atMs);
  return record.drone.position ?? record.drone.homeBase;
}

/** True while the drone has a flight with transitions still to publish. */
export const isFlying = (record: DroneRecord): boolean => record.flight !== undefined && !isOver(record.flight);

/**
 * The drone as callers see it at `atMs`: the stored drone with its stage and position taken from
 * its flight plan at that instant.
 */
export function droneAt(record: DroneRecord, atMs: number): Drone {
  const { drone, flight } = record;
  if (!flight) return drone;
  return create(DroneSchema, {
    ...drone,
    stage: stageAt(flight, atMs),
    position: toLocation(positionAt(flight, atMs), altitudeAt(flight, atMs)),
  });
}
