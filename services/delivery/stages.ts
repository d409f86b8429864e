/**
 * The order of delivery stages. A delivery starts at Requested (accepted, the workflow deciding)
 * and enters Created once its carrier is assigned (a delivery scheduled with its carrier at once
 * starts at Created). Created and Rescheduled may follow each other; after them come
 * HeadedToPickup, HeadedToDropoff and Completed; Cancelled and Failed end a delivery at any point
 * before Completed. Nothing leaves a final stage, and nothing moves backward.
 */
import { DeliveryStage, DeliveryStageSchema } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";

/** Completed, Cancelled and Failed: the delivery has ended. */
export function isEnded(stage: DeliveryStage): boolean {
  return stage === DeliveryStage.COMPLETED || stage === DeliveryStage.CANCELLED || stage === DeliveryStage.FAILED;
}

/** How far a delivery has come; a move must go to a higher step (Rescheduled may repeat at step 1). */
function step(stage: DeliveryStage): number {
  switch (stage) {
    case DeliveryStage.UNSPECIFIED:
      return 0;
    case DeliveryStage.REQUESTED:
      return 1;
    case DeliveryStage.CREATED:
    case DeliveryStage.RESCHEDULED:
      return 2;
    case DeliveryStage.HEADED_TO_PICKUP:
      return 3;
    case DeliveryStage.HEADED_TO_DROPOFF:
      return 4;
    case DeliveryStage.COMPLETED:
    case DeliveryStage.CANCELLED:
    case DeliveryStage.FAILED:
      return 5;
  }
}

/** Requested: accepted, with no carrier yet. */
export function isRequested(stage: DeliveryStage): boolean {
  return stage === DeliveryStage.REQUESTED;
}

/**
 * Whether a delivery at `from` may enter `to`. A new record starts at UNSPECIFIED and enters
 * Requested (or Created); a Requested delivery enters Created when its carrier is known, or ends.
 */
export function mayEnter(from: DeliveryStage, to: DeliveryStage): boolean {
  if (isEnded(from) || to === DeliveryStage.UNSPECIFIED) return false;
  if (from === DeliveryStage.UNSPECIFIED) return to === DeliveryStage.REQUESTED || to === DeliveryStage.CREATED;
  if (to === DeliveryStage.REQUESTED) return false;
  if (to === DeliveryStage.CREATED) return from === DeliveryStage.REQUESTED;
  if (from === DeliveryStage.REQUESTED) return isEnded(to);
  if (to === DeliveryStage.RESCHEDULED) return step(from) === 2;
  return step(to) > step(from);
}

/** The stage's name as the contract spells it without its prefix, e.g. "CANCELLED". */
export function stageName(stage: DeliveryStage): string {
  return DeliveryStageSchema.values.find((v) => v.number === stage)?.localName ?? `stage ${stage}`;
}
