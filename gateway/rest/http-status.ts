/**
 * Connect codes as REST sees them: the code's name (`invalid_argument`) and the HTTP status the
 * Connect protocol gives it (https://connectrpc.com/docs/protocol#error-codes).
 */
import { Code } from "@connectrpc/connect";

const STATUS: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

export function httpStatusOf(code: Code): number {
  return STATUS[code] ?? 500;
}

/** `InvalidArgument` -> `invalid_argument`; `Canceled` is spelled `canceled` like Connect does. */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  return name === undefined ? "unknown" : name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
