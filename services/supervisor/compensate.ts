/**
 * Runs the compensations of one failed workflow, recording each as it completes so a redelivered
 * failure resumes instead of starting over. Transient errors propagate (the failure message is
 * retried later, without limit: compensation must finish); answers that mean "already undone" or
 * "nothing to undo" count as done.
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  Compensation,
  CompensationProgressSchema,
  WorkflowProgressSchema,
  WorkflowState,
  type CompensationProgress,
  type WorkflowFailedEvent,
} from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import type { DomainClients } from "../scheduler/clients.js";
import { openRequestOf } from "../../lib/workflow/open-request.js";
import type { WorkflowStore } from "../scheduler/workflow-store.js";
import type { CompensationStore } from "./compensation-store.js";
import { failureCodeOf, failureMessageOf } from "./failure-code.js";
import { planCompensations } from "./plan.js";

export interface CompensationContext {
  compensations: CompensationStore;
  workflows: WorkflowStore;
  clients: DomainClients;
  log: Logger;
}

function failureReason(event: WorkflowFailedEvent): string {
  return event.reason || "the delivery could not be scheduled";
}


/** Answers that mean there is nothing (more) to undo. */
function nothingToUndo(error: unknown): boolean {
  return error instanceof ConnectError && (error.code === Code.NotFound || error.code === Code.FailedPrecondition);
}

async function run(ctx: CompensationContext, compensation: Compensation, event: WorkflowFailedEvent): Promise<void> {
  const { deliveryId } = event;
  const reason = failureReason(event);
  try {
    switch (compensation) {
      case Compensation.RELEASE_DRONE:
        await ctx.clients.drones.releaseAssignment({ deliveryId, reason });
        return;
      case Compensation.CANCEL_THIRD_PARTY:
        await ctx.clients.thirdParty.cancelPickup({ deliveryId, reason });
        return;
      case Compensation.DELETE_PACKAGES:
        // Only the packages this delivery holds: a package refused because another delivery or
        // owner holds it stays theirs.
        for (const packageId of event.progress?.packageIds ?? []) {
          await ctx.clients.packages.deletePackage({ packageId, allowMissing: true, deliveryId });
        }
        return;
      case Compensation.FAIL_DELIVERY: {
        const failureCode = failureCodeOf(event);
        await ctx.clients.deliveries.failDelivery({
          deliveryId,
          reason: failureMessageOf(event, failureCode),
          failureCode,
          // The accepted request, to record the delivery Failed should its workflow never have opened it.
          request: event.command ? openRequestOf(event.command) : undefined,
        });
        return;
      }
      default:
        throw new Error(`unknown compensation ${compensation}`);
    }
  } catch (error) {
    if (nothingToUndo(error)) {
      ctx.log.info({ deliveryId, compensation: Compensation[compensation], err: error }, "nothing to undo");
      return;
    }
    throw error;
  }
}

/** Opens or resumes the compensation record of a failure. */
async function begin(ctx: CompensationContext, event: WorkflowFailedEvent): Promise<CompensationProgress> {
  const result = await ctx.compensations.mutate(event.deliveryId, (current) => {
    if (current) return UNCHANGED;
    const now = timestampNow();
    return create(CompensationProgressSchema, {
      deliveryId: event.deliveryId,
      planned: planCompensations(event),
      failure: event,
      startTime: now,
      updateTime: now,
    });
  });
  return result.value;
}

async function recordDone(ctx: CompensationContext, deliveryId: string, compensation: Compensation): Promise<CompensationProgress> {
  const result = await ctx.compensations.mutate(deliveryId, (current) => {
    if (!current) throw new Error(`compensation of ${deliveryId} has no record`);
    const next = clone(CompensationProgressSchema, current);
    if (!next.done.includes(compensation)) next.done.push(compensation);
    next.complete = next.planned.every((c) => next.done.includes(c));
    next.updateTime = timestampNow();
    return next;
  });
  return result.value;
}

/** Marks the workflow in the saga log as compensated (from FAILED). */
async function markCompensated(ctx: CompensationContext, deliveryId: string): Promise<void> {
  await ctx.workflows.mutateExisting(deliveryId, (current) =>
    current.state === WorkflowState.COMPENSATED
      ? UNCHANGED
      : create(WorkflowProgressSchema, { ...current, state: WorkflowState.COMPENSATED, updateTime: timestampNow() }),
  );
}

export async function compensate(ctx: CompensationContext, event: WorkflowFailedEvent): Promise<CompensationProgress> {
  let progress = await begin(ctx, event);
  for (const compensation of progress.planned) {
    if (progress.done.includes(compensation)) continue;
    await run(ctx, compensation, progress.failure ?? event);
    progress = await recordDone(ctx, event.deliveryId, compensation);
  }
  await markCompensated(ctx, event.deliveryId);
  ctx.log.info({ deliveryId: event.deliveryId, done: progress.done.map((c) => Compensation[c]) }, "workflow compensated");
  return progress;
}
