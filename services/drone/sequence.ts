/**
 * Numbering of a drone's location events, derived from its flight plan and the clock alone, so any
 * instance (a restarted one, or the next leader) numbers every event of a flight the same way
 * without writing a counter per event.
 *
 * The events of a flight are its transitions (see flight.ts) and its ticks: one per telemetry
 * boundary `k * tickMs` (epoch ms) after the boundary at or before the flight's start and before
 * its arrival home. Ordered by time, a transition before a tick of the same instant, the n-th
 * event has sequence `sequenceBase + n`. A flight that follows another starts its numbering a
 * little past where the earlier one stood when it was replaced (SEQUENCE_GAP_MS), so events an
 * instance still publishes for the replaced flight in that moment stay below the new ones.
 * A tick that is not published (a restart, a busy loop) leaves a gap; sequences only grow.
 */
import { lastTransition, transitionMs, type Flight } from "./flight.js";

/** How far past the replacement the numbering of a replaced flight is reserved. */
export const SEQUENCE_GAP_MS = 1_000;

const firstBoundary = (flight: Flight): number => Math.floor(transitionMs(flight, 0) / flight.tickMs);
/** The last boundary strictly before the arrival home. */
const lastBoundary = (flight: Flight): number => Math.ceil(transitionMs(flight, lastTransition(flight)) / flight.tickMs) - 1;

function transitionsUpTo(flight: Flight, atMs: number): number {
  let n = 0;
  for (let i = 0; i <= lastTransition(flight); i++) if (transitionMs(flight, i) <= atMs) n++;
  return n;
}

/** True when boundary `k` has a tick in this flight. */
export function hasTick(flight: Flight, k: number): boolean {
  return k > firstBoundary(flight) && k <= lastBoundary(flight);
}

export function tickSequence(flight: Flight, k: number): number {
  return flight.sequenceBase + (k - firstBoundary(flight)) + transitionsUpTo(flight, k * flight.tickMs);
}

export function transitionSequence(flight: Flight, i: number): number {
  const ticksBefore = Math.max(0, Math.ceil(transitionMs(flight, i) / flight.tickMs) - 1 - firstBoundary(flight));
  return flight.sequenceBase + ticksBefore + i + 1;
}

/** The sequence of the flight's last event at or before `atMs` (its base before it starts). */
export function sequenceAt(flight: Flight, atMs: number): number {
  const ticks = Math.max(0, Math.min(Math.floor(atMs / flight.tickMs), lastBoundary(flight)) - firstBoundary(flight));
  return flight.sequenceBase + ticks + transitionsUpTo(flight, atMs);
}

/** The base of a flight replacing `previous` at `atMs` (0 for a drone's first flight). */
export function nextSequenceBase(previous: Flight | undefined, atMs: number): number {
  return previous ? sequenceAt(previous, atMs + SEQUENCE_GAP_MS) : 0;
}
