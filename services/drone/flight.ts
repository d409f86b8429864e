/**
 * A drone's flight, planned once when it starts and stored with the drone: consecutive legs, each
 * with its stage, start and end points and start and end times (epoch ms, durations already divided
 * by the time scale). Where the drone is and in which stage, at any instant, follows from the plan
 * and the clock, so nothing is written while it flies except its stage transitions.
 *
 * A delivery flight: current position -> pickup (HEADED_TO_PICKUP), dwell (PICKING_UP),
 * pickup -> drop-off (HEADED_TO_DROPOFF), dwell (DROPPING_OFF), drop-off -> home (RETURNING).
 * A return flight (after a release): current position -> home (RETURNING).
 * A rerouted delivery flight (the drop-off changed while the drone flies): from where the drone is
 * to the same pickup and on to the new drop-off, or, with the parcels on board, straight to it
 * (see planReroute).
 *
 * Transitions are numbered 0 to legs.length: transition i < legs.length is the start of legs[i];
 * transition legs.length is the arrival at the home base (stage IDLE).
 */
import { FlightStage } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { distanceKm, pointBetween, type LatLon } from "./geo.js";

export interface Point {
  readonly latitude: number;
  readonly longitude: number;
}

export interface Leg {
  readonly stage: FlightStage;
  readonly from: Point;
  readonly to: Point;
  readonly startMs: number;
  readonly endMs: number;
}

export interface Flight {
  /** Per drone, 1 for its first flight, one more for each next one. */
  readonly number: number;
  /**
   * The delivery flown, named by every event of the flight (the way home after the drop-off
   * included); empty for a return home after a release.
   */
  readonly deliveryId: string;
  /** Cruising speed, metres per second (as reported in events; not scaled). */
  readonly speedMps: number;
  /** The telemetry period (ms) the event numbering of this flight follows. */
  readonly tickMs: number;
  /** The sequence of the drone's last event before this flight (see sequence.ts). */
  readonly sequenceBase: number;
  readonly legs: readonly Leg[];
  /** The last transition published and stored; -1 before the first. */
  readonly applied: number;
  /**
   * Set (by the flying instance, with a revision-checked write) right before the drop-off is
   * published: from then on the flight can no longer be re-planned to another drop-off. Absent
   * until then, and on flights without a drop-off.
   */
  readonly dropoffCommitted?: boolean;
  /**
   * Kilometres flown for the delivery before this flight started (the earlier flights of a
   * rerouted delivery); absent for 0.
   */
  readonly priorKm?: number;
}

/** How flights are timed, from the configuration. */
export interface FlightTiming {
  /** Divides every duration: 600 makes a 10-minute flight last 1 s. */
  readonly timeScale: number;
  readonly pickupSeconds: number;
  readonly dropoffSeconds: number;
  /** Telemetry period, ms. */
  readonly tickMs: number;
}

const MOVING_STAGES: ReadonlySet<FlightStage> = new Set([
  FlightStage.HEADED_TO_PICKUP,
  FlightStage.HEADED_TO_DROPOFF,
  FlightStage.RETURNING,
]);

const point = (p: LatLon): Point => ({ latitude: p.latitude, longitude: p.longitude });

function flyingMs(km: number, speedMps: number, timing: FlightTiming): number {
  return Math.round((km * 1000 * 1000) / speedMps / timing.timeScale);
}

function dwellMs(seconds: number, timing: FlightTiming): number {
  return Math.round((seconds * 1000) / timing.timeScale);
}

/** Builds consecutive legs from `startMs`, each lasting the duration given. */
function chain(startMs: number, parts: readonly { stage: FlightStage; from: Point; to: Point; ms: number }[]): Leg[] {
  let at = Math.round(startMs);
  return parts.map((p) => {
    const leg = { stage: p.stage, from: p.from, to: p.to, startMs: at, endMs: at + p.ms };
    at = leg.endMs;
    return leg;
  });
}

export interface DeliveryFlightInput {
  readonly number: number;
  readonly deliveryId: string;
  readonly from: LatLon;
  readonly pickup: LatLon;
  readonly dropoff: LatLon;
  readonly home: LatLon;
  readonly speedMps: number;
  readonly startMs: number;
  readonly sequenceBase: number;
}

export function planDeliveryFlight(input: DeliveryFlightInput, timing: FlightTiming): Flight {
  const [from, pickup, dropoff, home] = [input.from, input.pickup, input.dropoff, input.home].map(point) as [Point, Point, Point, Point];
  const fly = (a: Point, b: Point): number => flyingMs(distanceKm(a, b), input.speedMps, timing);
  return {
    number: input.number,
    deliveryId: input.deliveryId,
    speedMps: input.speedMps,
    tickMs: timing.tickMs,
    sequenceBase: input.sequenceBase,
    applied: -1,
    legs: chain(input.startMs, [
      { stage: FlightStage.HEADED_TO_PICKUP, from, to: pickup, ms: fly(from, pickup) },
      { stage: FlightStage.PICKING_UP, from: pickup, to: pickup, ms: dwellMs(timing.pickupSeconds, timing) },
      { stage: FlightStage.HEADED_TO_DROPOFF, from: pickup, to: dropoff, ms: fly(pickup, dropoff) },
      { stage: FlightStage.DROPPING_OFF, from: dropoff, to: dropoff, ms: dwellMs(timing.dropoffSeconds, timing) },
      { stage: FlightStage.RETURNING, from: dropoff, to: home, ms: fly(dropoff, home) },
    ]),
  };
}

export interface ReturnFlightInput {
  readonly number: number;
  readonly from: LatLon;
  readonly home: LatLon;
  readonly speedMps: number;
  readonly startMs: number;
  readonly sequenceBase: number;
}

export function planReturnFlight(input: ReturnFlightInput, timing: FlightTiming): Flight {
  const from = point(input.from);
  const home = point(input.home);
  return {
    number: input.number,
    deliveryId: "",
    speedMps: input.speedMps,
    tickMs: timing.tickMs,
    sequenceBase: input.sequenceBase,
    applied: -1,
    legs: chain(input.startMs, [{ stage: FlightStage.RETURNING, from, to: home, ms: flyingMs(distanceKm(from, home), input.speedMps, timing) }]),
  };
}

/** The index of the last transition (arrival home). */
export const lastTransition = (flight: Flight): number => flight.legs.length;

export function transitionMs(flight: Flight, i: number): number {
  const leg = flight.legs[i];
  return leg ? leg.startMs : flight.legs[flight.legs.length - 1]!.endMs;
}

export function transitionStage(flight: Flight, i: number): FlightStage {
  return flight.legs[i]?.stage ?? FlightStage.IDLE;
}

/** Where the drone is at transition i: the start of its leg, or home for the arrival. */
export function transitionPoint(flight: Flight, i: number): Point {
  const leg = flight.legs[i];
  return leg ? leg.from : flight.legs[flight.legs.length - 1]!.to;
}

/** The transition of the leg flown in `stage`, if the flight has one. */
export function transitionOf(flight: Flight, stage: FlightStage): number | undefined {
  const i = flight.legs.findIndex((l) => l.stage === stage);
  return i < 0 ? undefined : i;
}

export const startMsOf = (flight: Flight): number => transitionMs(flight, 0);
export const endMsOf = (flight: Flight): number => transitionMs(flight, lastTransition(flight));

/** The last transition at or before `atMs` (0 before the flight starts). */
export function transitionAt(flight: Flight, atMs: number): number {
  let i = 0;
  while (i < lastTransition(flight) && transitionMs(flight, i + 1) <= atMs) i++;
  return i;
}

export function stageAt(flight: Flight, atMs: number): FlightStage {
  return transitionStage(flight, transitionAt(flight, atMs));
}

export function positionAt(flight: Flight, atMs: number): Point {
  const i = transitionAt(flight, atMs);
  const leg = flight.legs[i];
  if (!leg) return transitionPoint(flight, i);
  const span = leg.endMs - leg.startMs;
  if (span <= 0 || atMs <= leg.startMs) return leg.from;
  return pointBetween(leg.from, leg.to, (atMs - leg.startMs) / span);
}

/** Ground speed at `atMs`: the cruising speed on a moving leg, 0 on the ground. */
export function speedAt(flight: Flight, atMs: number): number {
  const leg = flight.legs[transitionAt(flight, atMs)];
  return leg && MOVING_STAGES.has(leg.stage) && leg.endMs > leg.startMs ? flight.speedMps : 0;
}

/** Height above ground while flying a leg, in metres. */
export const CRUISE_ALTITUDE_M = 60;

/** Height above ground at `atMs`: the cruising altitude while moving, 0 on the ground. */
export function altitudeAt(flight: Flight, atMs: number): number {
  return speedAt(flight, atMs) > 0 ? CRUISE_ALTITUDE_M : 0;
}

/** True once every transition, up to the arrival home, is published and stored. */
export const isOver = (flight: Flight): boolean => flight.applied >= lastTransition(flight);

/** The time of the next transition not yet applied; undefined when the flight is over. */
export function nextTransitionMs(flight: Flight): number | undefined {
  return isOver(flight) ? undefined : transitionMs(flight, flight.applied + 1);
}

/** Kilometres of the moving legs. */
export function flightDistanceKm(flight: Flight): number {
  return flight.legs.reduce((km, leg) => km + (MOVING_STAGES.has(leg.stage) ? distanceKm(leg.from, leg.to) : 0), 0);
}

/** Kilometres flown on the moving legs up to `atMs`. */
export function flownKm(flight: Flight, atMs: number): number {
  let km = 0;
  for (const leg of flight.legs) {
    if (!MOVING_STAGES.has(leg.stage) || leg.startMs >= atMs) continue;
    km += distanceKm(leg.from, atMs >= leg.endMs ? leg.to : positionAt(flight, atMs));
  }
  return km;
}

/** Kilometres of the whole delivery: flown before this flight, plus this flight's moving legs. */
export const deliveryDistanceKm = (flight: Flight): number => (flight.priorKm ?? 0) + flightDistanceKm(flight);

/** The drop-off point of a delivery flight; undefined for a flight without one. */
export function dropoffOf(flight: Flight): Point | undefined {
  const i = transitionOf(flight, FlightStage.DROPPING_OFF);
  return i === undefined ? undefined : flight.legs[i]!.from;
}

/**
 * True once the drop-off of a delivery flight can no longer change at `atMs`: its time has come by
 * the plan, the flying instance committed it, or it is applied. (A flight without a drop-off: true.)
 */
export function isDropoffFixed(flight: Flight, atMs: number): boolean {
  const i = transitionOf(flight, FlightStage.DROPPING_OFF);
  return i === undefined || flight.dropoffCommitted === true || flight.applied >= i || transitionMs(flight, i) <= atMs;
}

/**
 * True when the flying instance must commit the drop-off before publishing anything more of the
 * flight at `atMs`: the drop-off of a delivery flight is due, not applied and not committed yet.
 */
export function awaitsDropoffCommit(flight: Flight, atMs: number): boolean {
  const i = transitionOf(flight, FlightStage.DROPPING_OFF);
  return flight.deliveryId !== "" && i !== undefined && flight.dropoffCommitted !== true && flight.applied < i && transitionMs(flight, i) <= atMs;
}

export interface RerouteInput {
  readonly number: number;
  /** When the new flight starts: where the current one has the drone then is where it turns. */
  readonly startMs: number;
  readonly dropoff: LatLon;
  readonly sequenceBase: number;
}

/**
 * The delivery flight `current` becomes when its drop-off changes at `startMs`: before the pickup,
 * from where the drone is to the same pickup (the rest of the loading, if it is loading), then to
 * the new drop-off; with the parcels on board, from where it is straight to the new drop-off; then
 * home as before. Dwells keep their planned lengths. Undefined once the drop-off is fixed
 * (isDropoffFixed) or for a flight without a pickup and a drop-off.
 */
export function planReroute(current: Flight, input: RerouteInput, timing: FlightTiming): Flight | undefined {
  const at = Math.round(input.startMs);
  if (isDropoffFixed(current, at)) return undefined;
  const pickupLeg = current.legs[transitionOf(current, FlightStage.PICKING_UP) ?? -1];
  const dropoffLeg = current.legs[transitionOf(current, FlightStage.DROPPING_OFF)!]!;
  const homeLeg = current.legs[transitionOf(current, FlightStage.RETURNING) ?? -1];
  const home = homeLeg?.to ?? dropoffLeg.from;
  const dropoff = point(input.dropoff);
  const here = positionAt(current, at);
  const fly = (a: Point, b: Point): number => flyingMs(distanceKm(a, b), current.speedMps, timing);
  const tail = (from: Point) => [
    { stage: FlightStage.HEADED_TO_DROPOFF, from, to: dropoff, ms: fly(from, dropoff) },
    { stage: FlightStage.DROPPING_OFF, from: dropoff, to: dropoff, ms: dropoffLeg.endMs - dropoffLeg.startMs },
    { stage: FlightStage.RETURNING, from: dropoff, to: home, ms: fly(dropoff, home) },
  ];
  const stage = stageAt(current, at);
  let parts;
  if (stage === FlightStage.HEADED_TO_PICKUP && pickupLeg) {
    const pickup = pickupLeg.from;
    parts = [
      { stage: FlightStage.HEADED_TO_PICKUP, from: here, to: pickup, ms: fly(here, pickup) },
      { stage: FlightStage.PICKING_UP, from: pickup, to: pickup, ms: pickupLeg.endMs - pickupLeg.startMs },
      ...tail(pickup),
    ];
  } else if (stage === FlightStage.PICKING_UP && pickupLeg) {
    const pickup = pickupLeg.from;
    parts = [{ stage: FlightStage.PICKING_UP, from: pickup, to: pickup, ms: Math.max(0, pickupLeg.endMs - at) }, ...tail(pickup)];
  } else if (stage === FlightStage.HEADED_TO_DROPOFF) {
    parts = tail(here);
  } else {
    return undefined;
  }
  return {
    number: input.number,
    deliveryId: current.deliveryId,
    speedMps: current.speedMps,
    tickMs: current.tickMs,
    sequenceBase: input.sequenceBase,
    applied: -1,
    priorKm: (current.priorKm ?? 0) + flownKm(current, at),
    legs: chain(at, parts),
  };
}
