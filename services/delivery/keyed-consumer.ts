/**
 * A durable, explicit-ack pull consumer that handles messages with bounded concurrency while
 * keeping the order of the messages of one key (a drone, a delivery): messages of one key are
 * handled one after the other in stream order, messages of different keys at the same time. At
 * most `concurrency` messages are in hand at once (queued behind their key or being handled), so
 * memory stays bounded and JetStream holds back the rest.
 *
 * The handler decides each message's fate: `ack`, or `retry` (nak with a delay, up to the
 * consumer's `max_deliver`); a thrown error is a retry after `errorDelayMs`. The fates of the
 * messages handled within one turn of the event loop are sent together at its end (one socket
 * write for a burst of acks), each message's only after its handler is done. When the consumer or
 * its stream disappears under it, it creates the consumer again and goes on.
 */
import {
  type ConsumerMessages,
  type DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "nats";
import type { Logger } from "pino";
import { ensureWorkConsumer, retry, type WorkOutcome } from "../../lib/nats/work-consumer.js";
import { watchConsumer } from "../../lib/observability/metrics.js";
import { consumerSpan } from "../../lib/observability/trace-nats.js";
import { isTracingOn } from "../../lib/observability/trace-runtime.js";

export interface KeyedConsumerOptions {
  readonly stream: string;
  /** Durable name, shared by every instance of the service. */
  readonly durable: string;
  readonly description: string;
  /** Where a new durable starts; an existing one resumes where it stopped. */
  readonly deliverPolicy: DeliverPolicy;
  readonly ackWaitMs: number;
  /** Deliveries per message; -1 for no limit. */
  readonly maxDeliver: number;
  /** Messages in hand at once. */
  readonly concurrency: number;
  /** Messages asked of JetStream per pull (default: `concurrency`). */
  readonly batch?: number;
  /** The ordering key of a message. */
  keyOf(msg: JsMsg): string;
  handle(msg: JsMsg): Promise<WorkOutcome>;
  /** Delay before a message whose handler threw is redelivered. Default 1000 ms. */
  readonly errorDelayMs?: number;
  /** Delay before the consumer is set up again after it was lost. Default 1000 ms. */
  readonly restartDelayMs?: number;
  readonly log: Logger;
}

export interface RunningConsumer {
  /** Stops taking messages and waits (bounded) for those in hand. */
  stop(timeoutMs?: number): Promise<void>;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export async function startKeyedConsumer(js: JetStreamClient, jsm: JetStreamManager, options: KeyedConsumerOptions): Promise<RunningConsumer> {
  await ensureWorkConsumer(jsm, options);
  const unwatch = watchConsumer(jsm, options.stream, options.durable);
  const errorDelayMs = options.errorDelayMs ?? 1_000;
  const restartDelayMs = options.restartDelayMs ?? 1_000;
  const { log } = options;

  /** The last task of each key: the next message of the key runs after it. */
  const tails = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let messages: ConsumerMessages | undefined;
  /** Wakes the loop when a slot frees up. */
  let slotFreed: (() => void) | undefined;

  /**
   * The fates of the messages handled since the last turn of the event loop, sent together: the
   * client writes what is queued in one go, so a burst of handled messages costs one socket write
   * for its acks instead of one each. Every message is still acked (or handed back) on its own,
   * and only after its handler is done.
   */
  const settled: (JsMsg | WorkOutcome)[] = [];
  const sendSettled = (): void => {
    const batch = settled.splice(0);
    for (let i = 0; i < batch.length; i += 2) {
      const msg = batch[i] as JsMsg;
      const outcome = batch[i + 1] as WorkOutcome;
      if (outcome.kind === "ack") msg.ack();
      else msg.nak(outcome.delayMs);
    }
  };

  /** Runs the handler, in a CONSUMER span while tracing is on (the span's attributes cost a parse of the reply subject). */
  const run = (msg: JsMsg): Promise<WorkOutcome> => {
    if (!isTracingOn()) return options.handle(msg);
    return consumerSpan(msg.subject, msg.headers, () => options.handle(msg), {
      template: options.stream,
      attributes: { "messaging.consumer.group.name": options.durable, "messaging.nats.delivery_count": msg.info.redeliveryCount },
    });
  };

  /** Handles one message, then acks it (or hands it back): never before the handler is done. */
  const settle = async (msg: JsMsg): Promise<void> => {
    let outcome: WorkOutcome;
    try {
      outcome = await run(msg);
    } catch (error) {
      log.warn({ err: error, subject: msg.subject, attempt: msg.info.redeliveryCount }, "message handling failed; will retry");
      outcome = retry(errorDelayMs, (error as Error)?.message ?? String(error));
    }
    settled.push(msg, outcome);
    if (settled.length === 2) setImmediate(sendSettled);
  };

  const dispatch = (msg: JsMsg): void => {
    const key = options.keyOf(msg);
    const previous = tails.get(key);
    const task: Promise<void> = (previous ? previous.then(() => settle(msg)) : settle(msg)).finally(() => {
      inFlight.delete(task);
      if (tails.get(key) === task) tails.delete(key);
      slotFreed?.();
    });
    tails.set(key, task);
    inFlight.add(task);
  };

  const loop = (async () => {
    while (!stopped) {
      try {
        const consumer = await js.consumers.get(options.stream, options.durable);
        messages = await consumer.consume({ max_messages: options.batch ?? options.concurrency, abort_on_missing_resource: true });
        if (stopped) messages.stop();
        for await (const msg of messages) {
          if (stopped) {
            msg.nak(); // handed back at once rather than after the ack wait
            continue;
          }
          dispatch(msg);
          // Bounded: wait for a slot before taking the next message.
          while (inFlight.size >= options.concurrency) {
            await new Promise<void>((resolve) => {
              slotFreed = resolve;
            });
          }
          slotFreed = undefined;
        }
      } catch (error) {
        if (!stopped) log.warn({ err: error, stream: options.stream, durable: options.durable }, "consumer lost; setting it up again");
      }
      if (stopped) break;
      await delay(restartDelayMs);
      if (stopped) break;
      await ensureWorkConsumer(jsm, options).catch((error: unknown) =>
        log.warn({ err: error, stream: options.stream, durable: options.durable }, "consumer cannot be set up yet"),
      );
    }
  })();

  return {
    async stop(timeoutMs = 5_000) {
      stopped = true;
      unwatch();
      messages?.stop();
      const done = Promise.allSettled([loop, ...inFlight]);
      await Promise.race([done, delay(timeoutMs)]);
      sendSettled();
    },
  };
}
