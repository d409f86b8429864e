/**
 * `WatchFleet`: the fleet live. The call subscribes to `drone.*.location` (plain NATS: JetStream
 * delivers every event it stores on DRONE_TELEMETRY to the subject's subscribers too), then sends
 * every drone as it is now, then the location events as they arrive, until the caller ends the
 * call. Nothing is created on the server per call (no consumer), and the subscription ends with
 * the call. Events arriving while the drones are read wait in a queue bounded at
 * `MAX_QUEUED_EVENTS`: a slow reader loses the oldest events, never the drones of the start.
 */
import { create } from "@bufbuild/protobuf";
import type { NatsConnection, Subscription } from "nats";
import { DroneLocationEventSchema, type DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { WatchFleetResponseSchema, type WatchFleetResponse } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { decodeMessage } from "../../lib/nats/messages.js";
import { droneAt } from "./drone-record.js";
import type { DroneStore } from "./store.js";

/** Location events that may wait for a slow reader before the oldest is dropped. */
export const MAX_QUEUED_EVENTS = 1000;

/** Every drone's location subject. */
export const FLEET_LOCATIONS = "drone.*.location";

/** Drones read from the store at a time for the start of the stream. */
const READ_CHUNK = 200;

/** A bounded queue of events with one awaiting reader. */
class EventQueue {
  private readonly items: DroneLocationEvent[] = [];
  private wake: (() => void) | undefined;
  dropped = 0;

  push(event: DroneLocationEvent): void {
    this.items.push(event);
    if (this.items.length > MAX_QUEUED_EVENTS) {
      this.items.shift();
      this.dropped++;
    }
    this.wake?.();
  }

  /** The next event; undefined once `signal` is aborted. */
  async next(signal: AbortSignal): Promise<DroneLocationEvent | undefined> {
    while (this.items.length === 0) {
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
    return signal.aborted ? undefined : this.items.shift();
  }
}

export async function* watchFleet(
  store: DroneStore,
  nc: NatsConnection,
  signal: AbortSignal,
  nowMs: () => number,
): AsyncGenerator<WatchFleetResponse> {
  const queue = new EventQueue();
  let subscription: Subscription | undefined;
  try {
    // Subscribed before the drones are read, so that no event after the snapshot is missed.
    subscription = nc.subscribe(FLEET_LOCATIONS, {
      callback: (error, msg) => {
        if (error) return;
        try {
          queue.push(decodeMessage(msg, DroneLocationEventSchema));
        } catch {
          // Not a location event (another publisher on the subject): not relayed.
        }
      },
    });
    const ids = await store.droneIds();
    for (let start = 0; start < ids.length; start += READ_CHUNK) {
      const at = nowMs();
      for (const { value } of await store.readDrones(ids.slice(start, start + READ_CHUNK))) {
        if (signal.aborted) return;
        yield create(WatchFleetResponseSchema, { update: { case: "drone", value: droneAt(value, at) } });
      }
    }
    for (;;) {
      const event = await queue.next(signal);
      if (event === undefined) return;
      yield create(WatchFleetResponseSchema, { update: { case: "location", value: event } });
    }
  } finally {
    subscription?.unsubscribe();
  }
}
