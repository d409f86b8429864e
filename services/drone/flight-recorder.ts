/**
 * For the drone service's tests: the location events one drone publishes, read back from
 * DRONE_TELEMETRY through a filtered consumer, and checks on their order.
 */
import { DeliverPolicy, type JetStreamClient } from "nats";
import { expect } from "vitest";
import { DroneLocationEventSchema, type DroneLocationEvent } from "../../gen/dronedelivery/drone/v1/drone_events_pb.js";
import { decodeMessage, MESSAGE_ID_HEADER, MESSAGE_TYPE_HEADER } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";

export interface Received {
  readonly event: DroneLocationEvent;
  /** The Nats-Msg-Id ("" when absent). */
  readonly msgId: string;
}

export interface DroneRecorder {
  /** The events so far, in stream order. */
  readonly received: Received[];
  /** Message type headers that were not DroneLocationEvent's. */
  readonly badTypes: (string | undefined)[];
  stop(): Promise<void>;
}

/** Collects the events of one drone from a stream position on. */
export async function recordDrone(js: JetStreamClient, droneId: string, fromStreamSeq: number): Promise<DroneRecorder> {
  const consumer = await js.consumers.get(STREAMS.DRONE_TELEMETRY.name, {
    filterSubjects: subjects.droneLocation(droneId),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromStreamSeq,
  });
  const messages = await consumer.consume();
  const received: Received[] = [];
  const badTypes: (string | undefined)[] = [];
  const done = (async () => {
    for await (const m of messages) {
      const type = m.headers?.get(MESSAGE_TYPE_HEADER);
      if (type !== DroneLocationEventSchema.typeName) badTypes.push(type);
      received.push({ event: decodeMessage(m, DroneLocationEventSchema), msgId: m.headers?.get(MESSAGE_ID_HEADER) ?? "" });
    }
  })();
  return {
    received,
    badTypes,
    async stop() {
      await messages.close();
      await done;
    },
  };
}

/** A stage change's message id: `<droneId>:<flight>:<STAGE>` (a tick's is `<droneId>:<sequence>`). */
export const isStageChange = (received: Received): boolean => /^[^:]+:\d+:[A-Z_]+$/.test(received.msgId);

export function expectIncreasingSequences(received: readonly Received[]): void {
  for (let i = 1; i < received.length; i++) expect(received[i]!.event.sequence).toBeGreaterThan(received[i - 1]!.event.sequence);
}
