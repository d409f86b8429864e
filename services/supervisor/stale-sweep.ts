/**
 * Finds workflows that stopped making progress: RUNNING in the saga log for longer than the
 * threshold (their request message is lost to the Scheduler, for example after its last delivery
 * attempt crashed). Each is marked FAILED (kind STALE) with a revision-checked write, so a
 * Scheduler that wakes up later sees it was taken over, and its failure is published for
 * compensation like any other.
 */
import { create } from "@bufbuild/protobuf";
import { timestampMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { JetStreamClient } from "nats";
import type { Logger } from "pino";
import {
  FailureKind,
  WorkflowProgressSchema,
  WorkflowState,
  WorkflowStep,
} from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { startPeriodic, type Periodic } from "../../lib/service/periodic.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { publishWorkflowFailure } from "../scheduler/failure-events.js";
import { nextScheduleStep } from "../scheduler/progress.js";
import type { WorkflowStore } from "../scheduler/workflow-store.js";

export interface StaleSweepOptions {
  /** A RUNNING workflow without progress for this long is stale. */
  staleAfterMs: number;
  /** How often to look. 0 turns the sweep off. */
  intervalMs: number;
}


/** One pass: returns the delivery ids it marked stale. */
export async function sweepStaleWorkflows(workflows: WorkflowStore, js: JetStreamClient, staleAfterMs: number, log: Logger): Promise<string[]> {
  const marked: string[] = [];
  const cutoff = Date.now() - staleAfterMs;
  for (const deliveryId of await workflows.keys()) {
    const found = await workflows.get(deliveryId);
    const progress = found?.value;
    if (!progress || progress.state !== WorkflowState.RUNNING) continue;
    if (progress.updateTime && timestampMs(progress.updateTime) > cutoff) continue;
    const result = await workflows.mutateExisting(deliveryId, (current) => {
      if (current.state !== WorkflowState.RUNNING) return UNCHANGED;
      if (current.updateTime && timestampMs(current.updateTime) > cutoff) return UNCHANGED;
      const step = nextScheduleStep(current.completedSteps);
      const reason = `the workflow made no progress for ${Math.round(staleAfterMs / 1000)} s`;
      return create(WorkflowProgressSchema, {
        ...current,
        state: WorkflowState.FAILED,
        failedStep: step,
        failureKind: FailureKind.STALE,
        failureReason: reason,
        error: create(StatusSchema, { code: Code.DeadlineExceeded, message: reason }),
        updateTime: timestampNow(),
      });
    });
    if (!result?.changed) continue;
    await publishWorkflowFailure(js, result.value);
    log.warn({ deliveryId }, "stale workflow handed to compensation");
    marked.push(deliveryId);
  }
  return marked;
}

/** Runs the sweep every `intervalMs` until stopped (one sweep at a time). */
export function startStaleSweep(workflows: WorkflowStore, js: JetStreamClient, options: StaleSweepOptions, log: Logger): Periodic {
  return startPeriodic(
    options.intervalMs,
    () => sweepStaleWorkflows(workflows, js, options.staleAfterMs, log),
    (error) => log.error({ err: error }, "stale sweep failed"),
  );
}
