/**
 * Recording the workflow's progress in the saga log. Every change is a revision-checked write on
 * the delivery's record; a record that is no longer RUNNING (the Supervisor took the workflow
 * over) stops the Scheduler's work on it.
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  FailureKind,
  WorkflowProgressSchema,
  WorkflowState,
  WorkflowStep,
  type WorkflowProgress,
} from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import type { WorkflowStore } from "./workflow-store.js";

/** The steps of the schedule workflow, in order (the carrier step is ASSIGN_DRONE or ARRANGE_THIRD_PARTY). */
const SCHEDULE_STEPS = [
  WorkflowStep.OPEN_DELIVERY,
  WorkflowStep.CHECK_ACCOUNT,
  WorkflowStep.REGISTER_PACKAGES,
  WorkflowStep.ASSIGN_DRONE,
  WorkflowStep.CREATE_DELIVERY,
] as const;

/**
 * The step a workflow was at: the first schedule step after the last one completed (a record
 * written before a step was added to the workflow may lack that earlier step).
 */
export function nextScheduleStep(completed: readonly WorkflowStep[]): WorkflowStep {
  const done = (step: WorkflowStep) =>
    completed.includes(step) || (step === WorkflowStep.ASSIGN_DRONE && completed.includes(WorkflowStep.ARRANGE_THIRD_PARTY));
  let last = -1;
  SCHEDULE_STEPS.forEach((step, i) => {
    if (done(step)) last = i;
  });
  return SCHEDULE_STEPS[last + 1] ?? WorkflowStep.CREATE_DELIVERY;
}

/** The workflow is no longer the Scheduler's to run. */
export class WorkflowTakenOver extends Error {
  override readonly name = "WorkflowTakenOver";
  constructor(readonly progress: WorkflowProgress) {
    super(`workflow ${progress.deliveryId} is ${WorkflowState[progress.state]}`);
  }
}

/** Opens (or resumes) the record of a delivery's workflow and counts this attempt. */
export async function beginAttempt(
  store: WorkflowStore,
  deliveryId: string,
  ownerId: string,
  packageIds: readonly string[],
  attempt: number,
): Promise<WorkflowProgress> {
  const result = await store.mutate(deliveryId, (current) => {
    const now = timestampNow();
    if (!current) {
      // The package ids are known before they are registered, so a compensation can remove
      // packages whose registration took effect but was never recorded.
      return create(WorkflowProgressSchema, {
        deliveryId,
        ownerId,
        packageIds: [...packageIds],
        state: WorkflowState.RUNNING,
        startTime: now,
        updateTime: now,
        attempts: attempt,
      });
    }
    if (current.state !== WorkflowState.RUNNING || current.attempts >= attempt) return UNCHANGED;
    const next = clone(WorkflowProgressSchema, current);
    next.attempts = attempt;
    return next;
  });
  return result.value;
}

/** Records a completed step (and what it produced), unless the workflow was taken over. */
export async function completeStep(
  store: WorkflowStore,
  deliveryId: string,
  step: WorkflowStep,
  produced: (progress: WorkflowProgress) => void = () => {},
): Promise<WorkflowProgress> {
  const result = await store.mutate(deliveryId, (current) => {
    if (!current) throw new Error(`workflow ${deliveryId} has no record`);
    if (current.state !== WorkflowState.RUNNING) throw new WorkflowTakenOver(current);
    const next = clone(WorkflowProgressSchema, current);
    if (!next.completedSteps.includes(step)) next.completedSteps.push(step);
    produced(next);
    next.updateTime = timestampNow();
    return next;
  });
  return result.value;
}

export async function markSucceeded(store: WorkflowStore, deliveryId: string): Promise<WorkflowProgress> {
  const result = await store.mutate(deliveryId, (current) => {
    if (!current) throw new Error(`workflow ${deliveryId} has no record`);
    if (current.state === WorkflowState.SUCCEEDED) return UNCHANGED;
    if (current.state !== WorkflowState.RUNNING) throw new WorkflowTakenOver(current);
    return create(WorkflowProgressSchema, { ...current, state: WorkflowState.SUCCEEDED, updateTime: timestampNow() });
  });
  return result.value;
}

/** Records the failure; the first failure recorded wins. Returns the record as stored. */
export async function markFailed(
  store: WorkflowStore,
  deliveryId: string,
  failure: { step: WorkflowStep; kind: FailureKind; reason: string; error: Status },
): Promise<WorkflowProgress> {
  const result = await store.mutate(deliveryId, (current) => {
    if (!current) throw new Error(`workflow ${deliveryId} has no record`);
    if (current.state !== WorkflowState.RUNNING) return UNCHANGED;
    return create(WorkflowProgressSchema, {
      ...current,
      state: WorkflowState.FAILED,
      failedStep: failure.step,
      failureKind: failure.kind,
      failureReason: failure.reason,
      error: failure.error,
      updateTime: timestampNow(),
    });
  });
  return result.value;
}
