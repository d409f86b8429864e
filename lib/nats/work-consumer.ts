/**
 * A durable, explicit-ack pull consumer that works through a stream with bounded concurrency:
 * the Scheduler on DELIVERY_REQUESTS and the Supervisor on WORKFLOW_FAILURES run on it.
 *
 * The handler decides each message's fate: `ack` (done, or handed on), `retry` (nak with a delay;
 * the consumer's `max_deliver` bounds the attempts, and the handler sees the attempt number so it
 * can hand a message that is about to run out to someone else instead of letting it drop). While
 * a handler works, the message's ack deadline is extended, so a slow step is not redelivered to a
 * second worker; a crashed worker's messages come back after `ackWaitMs`.
 */
import {
  AckPolicy,
  DeliverPolicy,
  nanos,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsError,
} from "nats";
import type { Logger } from "pino";
import { watchConsumer } from "../observability/metrics.js";
import { consumerSpan } from "../observability/trace-nats.js";

/** What to do with a message once its handler is done. */
export type WorkOutcome = { kind: "ack" } | { kind: "retry"; delayMs: number; reason: string };

export const ack: WorkOutcome = { kind: "ack" };
export function retry(delayMs: number, reason: string): WorkOutcome {
  return { kind: "retry", delayMs, reason };
}

export interface WorkConsumerOptions {
  stream: string;
  /** Durable name: every instance of a service shares it, so they split the work. */
  durable: string;
  /** Deliveries per message before JetStream stops redelivering it; -1 for no limit. */
  maxDeliver: number;
  /** How long a delivered message may stay unacknowledged before it is redelivered. */
  ackWaitMs: number;
  /** Messages handled at once by this instance. */
  concurrency: number;
  /** Handles one message; a thrown error counts as a retry after `errorDelayMs`. */
  handle(msg: JsMsg): Promise<WorkOutcome>;
  /** Delay before a message whose handler threw is redelivered. Default 1000 ms. */
  errorDelayMs?: number;
  log: Logger;
}

export interface RunningWorkConsumer {
  /** Stops taking messages and waits (bounded) for the ones in hand to finish. */
  stop(timeoutMs?: number): Promise<void>;
}

/** What defines a durable explicit-ack consumer. */
export interface DurableConsumerSpec {
  stream: string;
  durable: string;
  description?: string;
  /** Where a new consumer starts; default all messages. Cannot change once created. */
  deliverPolicy?: DeliverPolicy;
  maxDeliver: number;
  ackWaitMs: number;
  concurrency: number;
}

/** How long each pull request of a work consumer lasts. */
const PULL_EXPIRES_MS = 10_000;

/** JetStream API error: a consumer of that name exists with another configuration. */
const JS_CONSUMER_EXISTS = 10148;

/**
 * Creates the durable consumer, or brings an existing one in line with the settings that can
 * change in place (description, ack wait, max deliver, max ack pending).
 */
export async function ensureWorkConsumer(jsm: JetStreamManager, spec: DurableConsumerSpec): Promise<void> {
  const changeable: Partial<ConsumerConfig> = {
    ack_wait: nanos(spec.ackWaitMs),
    max_deliver: spec.maxDeliver,
    max_ack_pending: Math.max(spec.concurrency * 4, 64),
    ...(spec.description === undefined ? {} : { description: spec.description }),
  };
  try {
    await jsm.consumers.add(spec.stream, {
      ...changeable,
      durable_name: spec.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: spec.deliverPolicy ?? DeliverPolicy.All,
    });
  } catch (error) {
    if ((error as NatsError).api_error?.err_code !== JS_CONSUMER_EXISTS) throw error;
    await jsm.consumers.update(spec.stream, spec.durable, changeable);
  }
}

export async function startWorkConsumer(js: JetStreamClient, jsm: JetStreamManager, options: WorkConsumerOptions): Promise<RunningWorkConsumer> {
  await ensureWorkConsumer(jsm, options);
  const unwatch = watchConsumer(jsm, options.stream, options.durable);
  const consumer = await js.consumers.get(options.stream, options.durable);
  // Pull requests expire after 10 s (nats.js default 30 s): a pull that the server lost (its
  // consumer's leader moved to another node of a cluster) is noticed by missed heartbeats (half
  // the expiry) and made again within about 10 s instead of half a minute.
  const messages: ConsumerMessages = await consumer.consume({ max_messages: options.concurrency, expires: PULL_EXPIRES_MS });
  const inFlight = new Set<Promise<void>>();
  const errorDelayMs = options.errorDelayMs ?? 1_000;
  const keepAliveMs = Math.max(500, Math.floor(options.ackWaitMs / 3));

  const handleOne = async (msg: JsMsg): Promise<void> => {
    const keepAlive = setInterval(() => msg.working(), keepAliveMs);
    try {
      const outcome = await consumerSpan(msg.subject, msg.headers, () => options.handle(msg), {
        template: options.stream,
        attributes: { "messaging.consumer.group.name": options.durable, "messaging.nats.delivery_count": msg.info.redeliveryCount },
      }).catch((error: unknown): WorkOutcome => {
        options.log.error({ err: error, subject: msg.subject, attempt: msg.info.redeliveryCount }, "handler failed; will retry");
        return retry(errorDelayMs, (error as Error)?.message ?? String(error));
      });
      if (outcome.kind === "ack") await msg.ackAck().catch(() => msg.ack());
      else msg.nak(outcome.delayMs);
    } finally {
      clearInterval(keepAlive);
    }
  };

  // Bounded concurrency: the loop waits for a free slot before it takes the next message.
  let slotFreed: (() => void) | undefined;
  const loop = (async () => {
    for await (const msg of messages) {
      const task: Promise<void> = handleOne(msg).finally(() => {
        inFlight.delete(task);
        slotFreed?.();
      });
      inFlight.add(task);
      while (inFlight.size >= options.concurrency) await new Promise<void>((resolve) => (slotFreed = resolve));
    }
  })();

  return {
    async stop(timeoutMs = 5_000) {
      unwatch();
      messages.stop();
      const settled = Promise.allSettled([loop, ...inFlight]);
      await Promise.race([settled, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    },
  };
}

/** Exponential backoff with full jitter: attempt 1 waits up to `baseMs`, doubling to `maxMs`. */
export function backoffMs(attempt: number, baseMs = 500, maxMs = 30_000): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
