// The knobs of the resilience layer (deadlines, retries, circuit breaker, bulkhead), their defaults,
// and reading them from RPC_* environment variables.

import { ConfigError, envInt, envNumber, type Env } from "../service/config.js";

export interface ResilienceConfig {
  /** Default timeout of a unary call to a NO_SIDE_EFFECTS method. */
  readonly readTimeoutMs: number;
  /** Default timeout of a unary call to an IDEMPOTENT method. */
  readonly idempotentWriteTimeoutMs: number;
  /** Default timeout of a unary call to any other method. */
  readonly writeTimeoutMs: number;
  /** Default timeout of a streaming call; 0 means none (a watch stream may stay open for hours). */
  readonly streamTimeoutMs: number;
  /** A call with less time than this left is refused with DEADLINE_EXCEEDED before it starts. */
  readonly deadlineFloorMs: number;

  /** Attempts per call, the first included; 1 turns retries off. */
  readonly retryMaxAttempts: number;
  /** Cap of the first backoff; each later one doubles, and a delay is drawn in [0, cap). */
  readonly retryInitialBackoffMs: number;
  /** Largest backoff cap. */
  readonly retryMaxBackoffMs: number;
  /** Retries may add at most this fraction of the calls to a target (0.2 = 20%)... */
  readonly retryBudgetRatio: number;
  /** ...plus this many retries per second, so that a target with little traffic can still be retried. */
  readonly retryBudgetMinPerSecond: number;

  /** The circuit opens when at least this fraction of the calls in the window failed (0 < r <= 1)... */
  readonly breakerFailureRatio: number;
  /** ...over a sliding window this long... */
  readonly breakerWindowMs: number;
  /** ...with at least this many calls in the window. */
  readonly breakerMinCalls: number;
  /** How long an open circuit refuses calls before it lets one trial call through. */
  readonly breakerHalfOpenAfterMs: number;

  /** Calls in flight per target; further calls wait in the queue. */
  readonly bulkheadMaxConcurrent: number;
  /** Calls that may wait for a slot; beyond this they are refused with RESOURCE_EXHAUSTED. */
  readonly bulkheadQueue: number;
}

export const DEFAULT_RESILIENCE_CONFIG: ResilienceConfig = Object.freeze({
  readTimeoutMs: 2_000,
  idempotentWriteTimeoutMs: 5_000,
  writeTimeoutMs: 5_000,
  streamTimeoutMs: 0,
  deadlineFloorMs: 5,
  retryMaxAttempts: 3,
  retryInitialBackoffMs: 50,
  retryMaxBackoffMs: 1_000,
  retryBudgetRatio: 0.2,
  retryBudgetMinPerSecond: 10,
  breakerFailureRatio: 0.5,
  breakerWindowMs: 10_000,
  breakerMinCalls: 20,
  breakerHalfOpenAfterMs: 2_000,
  bulkheadMaxConcurrent: 64,
  bulkheadQueue: 16,
});

/**
 * The configuration from RPC_* environment variables, over the defaults (or over `base`). A bad
 * value throws a ConfigError naming the variable.
 */
export function readResilienceConfig(env: Env, base: ResilienceConfig = DEFAULT_RESILIENCE_CONFIG): ResilienceConfig {
  const writeTimeoutMs = envInt(env, "RPC_TIMEOUT_WRITE_MS", base.writeTimeoutMs, { min: 1 });
  // RPC_TIMEOUT_WRITE_MS sets both write classes unless the idempotent one is set on its own.
  const idempotentFallback = env["RPC_TIMEOUT_WRITE_MS"]?.trim() ? writeTimeoutMs : base.idempotentWriteTimeoutMs;
  return resolveResilienceConfig({
    readTimeoutMs: envInt(env, "RPC_TIMEOUT_READ_MS", base.readTimeoutMs, { min: 1 }),
    idempotentWriteTimeoutMs: envInt(env, "RPC_TIMEOUT_IDEMPOTENT_WRITE_MS", idempotentFallback, { min: 1 }),
    writeTimeoutMs,
    streamTimeoutMs: envInt(env, "RPC_TIMEOUT_STREAM_MS", base.streamTimeoutMs, { min: 0 }),
    deadlineFloorMs: envInt(env, "RPC_DEADLINE_FLOOR_MS", base.deadlineFloorMs, { min: 0, max: 1_000 }),
    retryMaxAttempts: envInt(env, "RPC_RETRY_MAX_ATTEMPTS", base.retryMaxAttempts, { min: 1, max: 10 }),
    retryInitialBackoffMs: envInt(env, "RPC_RETRY_INITIAL_BACKOFF_MS", base.retryInitialBackoffMs, { min: 1 }),
    retryMaxBackoffMs: envInt(env, "RPC_RETRY_MAX_BACKOFF_MS", base.retryMaxBackoffMs, { min: 1 }),
    retryBudgetRatio: envNumber(env, "RPC_RETRY_BUDGET_RATIO", base.retryBudgetRatio, { min: 0, max: 10 }),
    retryBudgetMinPerSecond: envNumber(env, "RPC_RETRY_BUDGET_MIN_PER_SECOND", base.retryBudgetMinPerSecond, { min: 0 }),
    breakerFailureRatio: envNumber(env, "RPC_BREAKER_FAILURE_RATIO", base.breakerFailureRatio, { min: 0.01, max: 1 }),
    breakerWindowMs: envInt(env, "RPC_BREAKER_WINDOW_MS", base.breakerWindowMs, { min: 10 }),
    breakerMinCalls: envInt(env, "RPC_BREAKER_MIN_CALLS", base.breakerMinCalls, { min: 1 }),
    breakerHalfOpenAfterMs: envInt(env, "RPC_BREAKER_HALF_OPEN_AFTER_MS", base.breakerHalfOpenAfterMs, { min: 1 }),
    bulkheadMaxConcurrent: envInt(env, "RPC_BULKHEAD_MAX_CONCURRENT", base.bulkheadMaxConcurrent, { min: 1 }),
    bulkheadQueue: envInt(env, "RPC_BULKHEAD_QUEUE", base.bulkheadQueue, { min: 0 }),
  });
}

/** The defaults with `overrides` applied, checked; a value out of range throws a ConfigError. */
export function resolveResilienceConfig(overrides: Partial<ResilienceConfig> = {}): ResilienceConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const config: ResilienceConfig = { ...DEFAULT_RESILIENCE_CONFIG, ...defined };
  const check = (ok: boolean, what: string): void => {
    if (!ok) {
      throw new ConfigError(`resilience config: ${what}`);
    }
  };
  for (const key of ["readTimeoutMs", "idempotentWriteTimeoutMs", "writeTimeoutMs"] as const) {
    check(config[key] > 0, `${key}=${config[key]} must be above 0`);
  }
  check(config.streamTimeoutMs >= 0, `streamTimeoutMs=${config.streamTimeoutMs} must be 0 (none) or more`);
  check(config.deadlineFloorMs >= 0, `deadlineFloorMs=${config.deadlineFloorMs} must be 0 or more`);
  check(
    Number.isInteger(config.retryMaxAttempts) && config.retryMaxAttempts >= 1,
    `retryMaxAttempts=${config.retryMaxAttempts} must be an integer of at least 1`,
  );
  check(config.retryInitialBackoffMs > 0, `retryInitialBackoffMs=${config.retryInitialBackoffMs} must be above 0`);
  check(
    config.retryMaxBackoffMs >= config.retryInitialBackoffMs,
    `retryMaxBackoffMs=${config.retryMaxBackoffMs} must be at least retryInitialBackoffMs=${config.retryInitialBackoffMs}`,
  );
  check(config.retryBudgetRatio >= 0, `retryBudgetRatio=${config.retryBudgetRatio} must be 0 or more`);
  check(config.retryBudgetMinPerSecond >= 0, `retryBudgetMinPerSecond=${config.retryBudgetMinPerSecond} must be 0 or more`);
  check(
    config.breakerFailureRatio > 0 && config.breakerFailureRatio <= 1,
    `breakerFailureRatio=${config.breakerFailureRatio} must be in (0, 1]`,
  );
  check(config.breakerWindowMs > 0, `breakerWindowMs=${config.breakerWindowMs} must be above 0`);
  check(
    Number.isInteger(config.breakerMinCalls) && config.breakerMinCalls >= 1,
    `breakerMinCalls=${config.breakerMinCalls} must be an integer of at least 1`,
  );
  check(config.breakerHalfOpenAfterMs > 0, `breakerHalfOpenAfterMs=${config.breakerHalfOpenAfterMs} must be above 0`);
  check(
    Number.isInteger(config.bulkheadMaxConcurrent) && config.bulkheadMaxConcurrent >= 1,
    `bulkheadMaxConcurrent=${config.bulkheadMaxConcurrent} must be an integer of at least 1`,
  );
  check(
    Number.isInteger(config.bulkheadQueue) && config.bulkheadQueue >= 0,
    `bulkheadQueue=${config.bulkheadQueue} must be an integer of 0 or more`,
  );
  return Object.freeze(config);
}
