// Public API of the resilience layer: deadlines, retries, circuit breaker and bulkhead per target.

export {
  createTargetPolicies,
  createTargetPolicy,
  type AttemptFn,
  type ExecuteOptions,
  type StreamAdmission,
  type TargetPolicies,
  type TargetPolicy,
} from "./policy.js";
export {
  DEFAULT_RESILIENCE_CONFIG,
  readResilienceConfig,
  resolveResilienceConfig,
  type ResilienceConfig,
} from "./config.js";
export {
  BudgetSpentError,
  currentDeadline,
  defaultTimeoutMs,
  effectiveDeadline,
  ensureTimeLeft,
  remainingBudgetMs,
  runWithDeadline,
  type DeadlineRequest,
} from "./deadline.js";
export { CircuitOpenError, isInfrastructureFailure, type StreamOutcome } from "./breaker.js";
export { BulkheadFullError } from "./bulkhead.js";
export { isRetryableFailure } from "./retry.js";
export { RetryBudget } from "./retry-budget.js";
export { isRepeatable, methodClass, type MethodClass } from "./method-class.js";
export type { CircuitStateName, ResilienceHooks } from "./hooks.js";
