// Public API of the gRPC binding.

export * from "./binding.js";
export {
  RpcError,
  aborted,
  alreadyExists,
  failedPrecondition,
  fieldViolations,
  invalidArgument,
  notFound,
  resourceExhausted,
  retryDelayMs,
  unavailable,
  type FieldViolation,
  type PreconditionViolation,
  type RpcErrorOptions,
} from "./errors.js";
export { STATUS_DETAILS_KEY, decodeStatusDetails, encodeStatusDetails, errorDetailRegistry, rpcStatusOf } from "./status.js";
export { methodPath } from "./codec.js";
