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
import { isRevisionConflict, UNCHANGED, type Versioned } from "../../lib/store/proto-kv-store.js";
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

/** Attempts of a revision-checked write of the record before the step answers ABORTED. */
const WRITE_ATTEMPTS = 10;

/**
 * One workflow's record as this attempt last read or wrote it, with its revision: each step is
 * recorded with one write checked against that revision, without reading the record first. A
 * write that loses (the Supervisor, or another attempt, changed the record) reads it again and
 * applies the step to what it finds; a record no longer RUNNING stops the workflow.
 */
export class WorkflowRecord {
  constructor(
    private readonly store: WorkflowStore,
    private current: Versioned<WorkflowProgress>,
  ) {}

  get progress(): WorkflowProgress {
    return this.current.value;
  }

  /** True when `step` is recorded as completed. */
  done(step: WorkflowStep): boolean {
    return this.current.value.completedSteps.includes(step);
  }

  /**
   * Records `steps` as completed (and what they produced) in one write; `succeeded` also marks
   * the workflow SUCCEEDED (the last step). Throws WorkflowTakenOver when the record is no longer
   * RUNNING.
   */
  async complete(steps: readonly WorkflowStep[], produced: (progress: WorkflowProgress) => void = () => {}, succeeded = false): Promise<WorkflowProgress> {
    const deliveryId = this.current.value.deliveryId;
    for (let attempt = 1; ; attempt++) {
      const base = this.current.value;
      if (base.state === WorkflowState.SUCCEEDED && succeeded) return base;
      if (base.state !== WorkflowState.RUNNING) throw new WorkflowTakenOver(base);
      const next = clone(WorkflowProgressSchema, base);
      for (const step of steps) if (!next.completedSteps.includes(step)) next.completedSteps.push(step);
      produced(next);
      if (succeeded) next.state = WorkflowState.SUCCEEDED;
      next.updateTime = timestampNow();
      try {
        this.current = { value: next, revision: await this.store.update(deliveryId, next, this.current.revision) };
        return next;
      } catch (error) {
        if (!isRevisionConflict(error) || attempt >= WRITE_ATTEMPTS) throw error;
      }
      const fresh = await this.store.get(deliveryId);
      if (!fresh) throw new Error(`workflow ${deliveryId} has no record`);
      this.current = fresh;
    }
  }
}

/**
 * Opens (or resumes) the record of a delivery's workflow and counts this attempt. A first attempt
 * creates the record with a create-only write (no read); when one exists (a redelivery that the
 * server counted as a first delivery, or a duplicate command) it is read and resumed.
 */
export async function beginAttempt(
  store: WorkflowStore,
  deliveryId: string,
  ownerId: string,
  packageIds: readonly string[],
  attempt: number,
): Promise<WorkflowRecord> {
  const fresh = () => {
    const now = timestampNow();
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
  };
  if (attempt <= 1) {
    const value = fresh();
    try {
      return new WorkflowRecord(store, { value, revision: await store.create(deliveryId, value) });
    } catch (error) {
      // An existing record (a create of an existing key is a revision conflict): resume it below.
      if (!isRevisionConflict(error) && !/exists/i.test((error as Error)?.message ?? "")) throw error;
    }
  }
  const result = await store.mutate(deliveryId, (current) => {
    if (!current) return fresh();
    if (current.state !== WorkflowState.RUNNING || current.attempts >= attempt) return UNCHANGED;
    const next = clone(WorkflowProgressSchema, current);
    next.attempts = attempt;
    return next;
  });
  return new WorkflowRecord(store, result);
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
