// Public API of the gRPC binding.

export * from "./binding.js";
export {
  ConnectErrorKind,
  aborted,
  alreadyExists,
  errorDetails,
  errorMessage,
  failedPrecondition,
  fieldViolations,
  invalidArgument,
  notFound,
  resourceExhausted,
  retryDelayMs,
  retryDetails,
  unavailable,
  type ErrorDetail,
  type FieldViolation,
  type OutgoingErrorDetail,
  type PreconditionViolation,
} from "./errors.js";
export {
  STATUS_DETAILS_KEY,
  STATUS_OK,
  decodeStatusDetails,
  encodeStatusDetails,
  errorDetailRegistry,
  headersFromMetadata,
  rpcStatusOf,
} from "./status.js";
export { methodPath } from "./codec.js";
