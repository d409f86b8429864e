/**
 * What a customer is told of a failed workflow: a code for programs (DeliveryFailureCode) and a
 * sentence for people, derived from the step that failed and how. Messages of internal calls that
 * failed transiently (addresses, connection errors) never reach the customer; the refusals of a
 * domain service (the account is suspended, the parcel belongs to another account) do, since they
 * say what the customer can act on.
 */
import { Code } from "@connectrpc/connect";
import { DeliveryFailureCode } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { FailureKind, WorkflowStep, type WorkflowFailedEvent } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";

export function failureCodeOf(event: WorkflowFailedEvent): DeliveryFailureCode {
  if (event.kind === FailureKind.STALE) return DeliveryFailureCode.WORKFLOW_STALLED;
  const code = event.error?.code;
  if (code === Code.InvalidArgument) return DeliveryFailureCode.INVALID_REQUEST;
  const permanent = event.kind === FailureKind.PERMANENT;
  switch (event.failedStep) {
    case WorkflowStep.CHECK_ACCOUNT:
      return permanent ? DeliveryFailureCode.ACCOUNT_NOT_ALLOWED : DeliveryFailureCode.SCHEDULING_ERROR;
    case WorkflowStep.REGISTER_PACKAGES:
      return permanent ? DeliveryFailureCode.PACKAGE_CONFLICT : DeliveryFailureCode.SCHEDULING_ERROR;
    case WorkflowStep.ASSIGN_DRONE:
      return code === Code.ResourceExhausted ? DeliveryFailureCode.NO_DRONE_AVAILABLE : DeliveryFailureCode.SCHEDULING_ERROR;
    case WorkflowStep.ARRANGE_THIRD_PARTY:
      return permanent || code === Code.ResourceExhausted ? DeliveryFailureCode.NO_CARRIER_AVAILABLE : DeliveryFailureCode.SCHEDULING_ERROR;
    default:
      return DeliveryFailureCode.SCHEDULING_ERROR;
  }
}

const SENTENCES: Record<DeliveryFailureCode, string> = {
  [DeliveryFailureCode.UNSPECIFIED]: "The delivery could not be scheduled.",
  [DeliveryFailureCode.NO_DRONE_AVAILABLE]: "No drone was free to carry the parcels in time.",
  [DeliveryFailureCode.ACCOUNT_NOT_ALLOWED]: "The account may not order deliveries.",
  [DeliveryFailureCode.PACKAGE_CONFLICT]: "A parcel cannot be carried in this delivery.",
  [DeliveryFailureCode.NO_CARRIER_AVAILABLE]: "No drone can carry the parcels and no outside carrier could be booked.",
  [DeliveryFailureCode.INVALID_REQUEST]: "The request was refused as invalid.",
  [DeliveryFailureCode.WORKFLOW_STALLED]: "The delivery could not be scheduled in time.",
  [DeliveryFailureCode.SCHEDULING_ERROR]: "The delivery could not be scheduled.",
};

/** Codes whose domain refusal is worth quoting to the customer. */
const QUOTED = new Set([DeliveryFailureCode.ACCOUNT_NOT_ALLOWED, DeliveryFailureCode.PACKAGE_CONFLICT, DeliveryFailureCode.INVALID_REQUEST, DeliveryFailureCode.NO_CARRIER_AVAILABLE]);

/** The sentence for people, at most 1024 characters. */
export function failureMessageOf(event: WorkflowFailedEvent, code: DeliveryFailureCode): string {
  const sentence = SENTENCES[code];
  const detail = event.kind === FailureKind.PERMANENT && QUOTED.has(code) ? event.reason.trim() : "";
  return (detail ? `${sentence} ${detail}` : sentence).slice(0, 1024);
}
