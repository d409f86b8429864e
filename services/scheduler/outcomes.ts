/**
 * How the workflow reads a failed call: transient failures are retried later (the message is
 * nak'ed with a growing delay), everything else is permanent and hands the workflow to the
 * Supervisor.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import type { WorkflowStep } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { errorMessage } from "../../lib/grpc/errors.js";
import { rpcStatusOf } from "../../lib/grpc/status.js";

/** Codes worth another try: the callee is down, slow, busy, or lost a race. */
const TRANSIENT = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Aborted]);

export function isTransient(error: unknown): boolean {
  if (error instanceof ConnectError) return TRANSIENT.has(error.code);
  // Not an RPC answer (NATS briefly away, a timeout of our own): try again.
  return true;
}

/** A step failed for a reason retrying cannot change. */
export class PermanentFailure extends Error {
  override readonly name = "PermanentFailure";
  constructor(
    readonly step: WorkflowStep,
    readonly reason: string,
    readonly error: Status,
  ) {
    super(reason);
  }
}

/**
 * Runs one step's call: transient errors propagate (the message is retried), any other error
 * becomes a PermanentFailure of `step` with a readable reason.
 */
export async function callStep<T>(step: WorkflowStep, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (isTransient(error)) throw error;
    throw new PermanentFailure(step, `${what}: ${errorMessage(error)}`, rpcStatusOf(error));
  }
}
