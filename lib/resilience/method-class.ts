// What a method's contract says about repeating it: the `idempotency_level` option of the RPC,
// read from its protobuf-es descriptor.

import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

/**
 * - "read": NO_SIDE_EFFECTS, safe to repeat and to give up on at any time;
 * - "idempotent_write": IDEMPOTENT, has effects but repeating it changes nothing more;
 * - "write": IDEMPOTENCY_UNKNOWN (no option), never repeated by the runtime.
 */
export type MethodClass = "read" | "idempotent_write" | "write";

export function methodClass(method: DescMethod): MethodClass {
  switch (method.idempotency) {
    case MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS:
      return "read";
    case MethodOptions_IdempotencyLevel.IDEMPOTENT:
      return "idempotent_write";
    default:
      return "write";
  }
}

/** Whether the runtime may send the method again after a failed attempt. */
export function isRepeatable(method: DescMethod): boolean {
  return methodClass(method) !== "write";
}

/** Whether the method streams requests or responses (no retries once a stream started). */
export function isStreaming(method: DescMethod): boolean {
  return method.methodKind !== "unary";
}
