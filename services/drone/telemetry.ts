/**
 * `DroneLocationEvent`s on `drone.<droneId>.location` (stream DRONE_TELEMETRY), published with
 * publishMessage: the message type header, the trace context, and a Nats-Msg-Id so that an event
 * published twice (a restart, a hand-over between instances) is stored once:
 *   - a stage change: `<droneId>:<flightNumber>:<STAGE>`
 *   - a tick:         `<droneId>:<sequence>`
 *
 * Events of a delivery flight carry the drone's own ETAs from its plan (the clock the flight is
 * flown in, durations already divided by the time scale): the arrival at the pickup while headed
 * there or loading, the drop-off up to and including the DROPPING_OFF event.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, PubAck } from "nats";
import { FlightStage, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { DroneLocationEventSchema, type DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";
import { toLocation } from "./drone-record.js";
import {
  altitudeAt,
  positionAt,
  speedAt,
  stageAt,
  transitionMs,
  transitionOf,
  transitionPoint,
  transitionStage,
  type Flight,
} from "./flight.js";
import { tickSequence, transitionSequence } from "./sequence.js";

export interface OutgoingEvent {
  readonly event: DroneLocationEvent;
  readonly msgId: string;
  /** True for a stage change (acknowledged and stored before the transition counts as applied). */
  readonly stageChange: boolean;
}

const stageName = (stage: FlightStage): string => FlightStage[stage] ?? String(stage);

export function stageMsgId(droneId: string, flight: Flight, stage: FlightStage): string {
  return `${droneId}:${flight.number}:${stageName(stage)}`;
}

const BEFORE_PICKUP: ReadonlySet<FlightStage> = new Set([FlightStage.HEADED_TO_PICKUP, FlightStage.PICKING_UP]);
const UNTIL_DROPOFF: ReadonlySet<FlightStage> = new Set([...BEFORE_PICKUP, FlightStage.HEADED_TO_DROPOFF, FlightStage.DROPPING_OFF]);

/** The ETAs an event in `stage` of the flight carries (see the file comment). */
export function flightEtas(flight: Flight, stage: FlightStage): Pick<DroneLocationEvent, "pickupEta" | "dropoffEta"> {
  if (flight.deliveryId === "") return {};
  const at = (s: FlightStage) => {
    const i = transitionOf(flight, s);
    return i === undefined ? undefined : timestampFromMs(transitionMs(flight, i));
  };
  const pickupEta = BEFORE_PICKUP.has(stage) ? at(FlightStage.PICKING_UP) : undefined;
  const dropoffEta = UNTIL_DROPOFF.has(stage) ? at(FlightStage.DROPPING_OFF) : undefined;
  return { ...(pickupEta ? { pickupEta } : {}), ...(dropoffEta ? { dropoffEta } : {}) };
}

/** The event of transition `i` of the flight: the new stage, where and when it began. */
export function transitionEvent(drone: Drone, flight: Flight, i: number): OutgoingEvent {
  const stage = transitionStage(flight, i);
  const atMs = transitionMs(flight, i);
  return {
    stageChange: true,
    msgId: stageMsgId(drone.droneId, flight, stage),
    event: create(DroneLocationEventSchema, {
      droneId: drone.droneId,
      deliveryId: flight.deliveryId,
      position: toLocation(transitionPoint(flight, i), altitudeAt(flight, atMs)),
      stage,
      batteryPercent: drone.batteryPercent,
      eventTime: timestampFromMs(atMs),
      speedMps: speedAt(flight, atMs),
      sequence: BigInt(transitionSequence(flight, i)),
      ...flightEtas(flight, stage),
    }),
  };
}

/** The event of the tick at boundary `k`: where the drone is at `k * tickMs`. */
export function tickEvent(drone: Drone, flight: Flight, k: number): OutgoingEvent {
  const atMs = k * flight.tickMs;
  const stage = stageAt(flight, atMs);
  const sequence = tickSequence(flight, k);
  return {
    stageChange: false,
    msgId: `${drone.droneId}:${sequence}`,
    event: create(DroneLocationEventSchema, {
      droneId: drone.droneId,
      deliveryId: flight.deliveryId,
      position: toLocation(positionAt(flight, atMs), altitudeAt(flight, atMs)),
      stage,
      batteryPercent: drone.batteryPercent,
      eventTime: timestampFromMs(atMs),
      speedMps: speedAt(flight, atMs),
      sequence: BigInt(sequence),
      ...flightEtas(flight, stage),
    }),
  };
}

/** Publishes the event; resolves once JetStream stored it (or recognised it as a duplicate). */
export function publishLocation(js: JetStreamClient, outgoing: OutgoingEvent): Promise<PubAck> {
  return publishMessage(js, subjects.droneLocation(outgoing.event.droneId), DroneLocationEventSchema, outgoing.event, {
    msgId: outgoing.msgId,
    expectStream: STREAMS.DRONE_TELEMETRY.name,
  });
}
