/**
 * The Delivery service's settings, read once at start from its environment. A bad value stops
 * the service at start with a message naming the variable.
 */
import { envInt, envNumber, type Env } from "../../lib/service/config.js";

export interface DeliveryConfig {
  /** Least time between two writes of a delivery's position and ETAs from telemetry. */
  readonly locationWriteIntervalMs: number;
  /** Speed assumed for ETAs when neither the event nor an earlier one of the drone gives one. */
  readonly defaultSpeedMps: number;
  /** Telemetry messages in hand at once (queued per drone or being handled). */
  readonly telemetryConcurrency: number;
  /** Telemetry messages asked of JetStream per pull. */
  readonly telemetryBatch: number;
  readonly telemetryAckWaitMs: number;
  readonly telemetryMaxDeliver: number;
  /** Deliveries whose state the telemetry consumer keeps at hand. */
  readonly telemetryCacheSize: number;
  /** Status events in hand at once by the history subscriber. */
  readonly historyConcurrency: number;
  readonly historyAckWaitMs: number;
  /** How often the outbox republishes status events whose publishing was interrupted. */
  readonly outboxIntervalMs: number;
  /** Age after which an outbox entry whose events are all published is removed by the sweep. */
  readonly outboxSettleMs: number;
  /** How long a publish waits for JetStream's ack. */
  readonly publishTimeoutMs: number;
  /** How often open deliveries are compared with their drone's assignment (0: never). */
  readonly reconcileIntervalMs: number;
  /** An open delivery unchanged for this long is compared with its drone's assignment. */
  readonly reconcileQuietMs: number;
  /** The carrier status consumer (`DELIVERY_CARRIER_*`). */
  readonly carrier: {
    /** Carrier messages in hand at once (queued per delivery or being handled). */
    readonly concurrency: number;
    readonly ackWaitMs: number;
    /** Deliveries of one message: bounds the retries of an event that came before its record. */
    readonly maxDeliver: number;
    /** Delay before an event whose delivery record does not name the carrier yet is retried. */
    readonly retryDelayMs: number;
    /** Deliveries whose last applied sequence is kept. */
    readonly cacheSize: number;
  };
}

export function readConfig(env: Env): DeliveryConfig {
  return {
    locationWriteIntervalMs: envInt(env, "DELIVERY_LOCATION_WRITE_INTERVAL_MS", 5_000, { min: 0 }),
    defaultSpeedMps: envNumber(env, "DELIVERY_DEFAULT_SPEED_MPS", 15, { min: 0.1, max: 500 }),
    telemetryConcurrency: envInt(env, "DELIVERY_TELEMETRY_CONCURRENCY", 256, { min: 1, max: 10_000 }),
    telemetryBatch: envInt(env, "DELIVERY_TELEMETRY_BATCH", 256, { min: 1, max: 10_000 }),
    telemetryAckWaitMs: envInt(env, "DELIVERY_TELEMETRY_ACK_WAIT_MS", 30_000, { min: 1_000 }),
    telemetryMaxDeliver: envInt(env, "DELIVERY_TELEMETRY_MAX_DELIVER", 10, { min: 1, max: 1_000 }),
    telemetryCacheSize: envInt(env, "DELIVERY_TELEMETRY_CACHE_SIZE", 20_000, { min: 1 }),
    historyConcurrency: envInt(env, "DELIVERY_HISTORY_CONCURRENCY", 32, { min: 1, max: 10_000 }),
    historyAckWaitMs: envInt(env, "DELIVERY_HISTORY_ACK_WAIT_MS", 30_000, { min: 1_000 }),
    outboxIntervalMs: envInt(env, "DELIVERY_OUTBOX_INTERVAL_MS", 5_000, { min: 10 }),
    outboxSettleMs: envInt(env, "DELIVERY_OUTBOX_SETTLE_MS", 30_000, { min: 0 }),
    publishTimeoutMs: envInt(env, "DELIVERY_PUBLISH_TIMEOUT_MS", 5_000, { min: 100 }),
    reconcileIntervalMs: envInt(env, "DELIVERY_RECONCILE_INTERVAL_MS", 15_000, { min: 0 }),
    reconcileQuietMs: envInt(env, "DELIVERY_RECONCILE_QUIET_MS", 10_000, { min: 0 }),
    carrier: {
      concurrency: envInt(env, "DELIVERY_CARRIER_CONCURRENCY", 64, { min: 1, max: 10_000 }),
      ackWaitMs: envInt(env, "DELIVERY_CARRIER_ACK_WAIT_MS", 30_000, { min: 1_000 }),
      maxDeliver: envInt(env, "DELIVERY_CARRIER_MAX_DELIVER", 300, { min: 1, max: 100_000 }),
      retryDelayMs: envInt(env, "DELIVERY_CARRIER_RETRY_MS", 1_000, { min: 10, max: 600_000 }),
      cacheSize: envInt(env, "DELIVERY_CARRIER_CACHE_SIZE", 20_000, { min: 1 }),
    },
  };
}
