/**
 * What to undo for a failed workflow, in reverse order of the workflow's steps. The failed step
 * itself may have taken effect in part (some packages registered before one was refused) or, after
 * retries ran out (or when stale), in full without being recorded, so it is undone too; every
 * compensation is idempotent and touches only what this delivery holds, so undoing something that
 * never happened changes nothing.
 */
import { Compensation, FailureKind, WorkflowStep, type WorkflowFailedEvent } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";

/** Steps in workflow order, each with the compensation that undoes it. */
const UNDO: readonly [WorkflowStep, Compensation][] = [
  [WorkflowStep.REGISTER_PACKAGES, Compensation.DELETE_PACKAGES],
  [WorkflowStep.ASSIGN_DRONE, Compensation.RELEASE_DRONE],
  [WorkflowStep.ARRANGE_THIRD_PARTY, Compensation.CANCEL_THIRD_PARTY],
  [WorkflowStep.CREATE_DELIVERY, Compensation.FAIL_DELIVERY],
];

export function planCompensations(event: WorkflowFailedEvent): Compensation[] {
  const touched = new Set(event.progress?.completedSteps ?? []);
  touched.add(event.failedStep);
  // A carrier step that failed transiently may have been the drone or the third-party one.
  if (touched.has(WorkflowStep.ASSIGN_DRONE) && event.kind !== FailureKind.PERMANENT) touched.add(WorkflowStep.ARRANGE_THIRD_PARTY);
  // The customer always learns the outcome: a delivery record that exists is marked Failed.
  touched.add(WorkflowStep.CREATE_DELIVERY);
  return UNDO.filter(([step]) => touched.has(step))
    .map(([, compensation]) => compensation)
    .reverse();
}
