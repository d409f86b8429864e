/**
 * Reschedule and cancel commands. They apply to a delivery whose schedule workflow succeeded;
 * while that workflow still runs they wait (the message is retried later), and when it failed
 * there is nothing left to change. The owner named in the command must own the delivery.
 */
import type { Logger } from "pino";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CancelDeliveryCommand, RescheduleDeliveryCommand } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { WorkflowState, WorkflowStep, type WorkflowProgress } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { unavailable } from "../../lib/grpc/errors.js";
import type { SagaContext } from "./schedule-saga.js";
import { completeStep } from "./progress.js";

/** Whether a change command can be applied now, must wait, or has nothing to apply to. */
type Readiness = { kind: "ready"; progress: WorkflowProgress } | { kind: "wait"; why: string } | { kind: "skip"; why: string };

async function readiness(ctx: SagaContext, deliveryId: string, ownerId: string): Promise<Readiness> {
  const found = await ctx.store.get(deliveryId);
  if (!found) return { kind: "wait", why: "the delivery's schedule request has not been processed yet" };
  const progress = found.value;
  if (progress.ownerId !== ownerId) return { kind: "skip", why: `account ${ownerId} does not own delivery ${deliveryId}` };
  switch (progress.state) {
    case WorkflowState.SUCCEEDED:
      return { kind: "ready", progress };
    case WorkflowState.RUNNING:
      return { kind: "wait", why: "the delivery is still being scheduled" };
    default:
      return { kind: "skip", why: `the delivery's workflow ${WorkflowState[progress.state]}` };
  }
}

/** A refusal of the domain service that retrying cannot change ends the command. */
function isFinalRefusal(error: unknown): error is ConnectError {
  return error instanceof ConnectError && [Code.FailedPrecondition, Code.NotFound, Code.InvalidArgument].includes(error.code);
}

/**
 * Applies a reschedule. Throws UNAVAILABLE to be retried while the delivery is not scheduled yet.
 * A new drop-off takes effect on the carrier first: the drone is re-routed (the Drone service
 * refuses once the parcels are dropped off), and only then does the delivery record change, so
 * the record never names a drop-off no drone flies to. An outside carrier's drop-off cannot be
 * changed; the gateway refuses such a change before accepting it, and one that slips through is
 * not applied.
 */
export async function runReschedule(ctx: SagaContext, command: RescheduleDeliveryCommand, log: Logger): Promise<void> {
  const state = await readiness(ctx, command.deliveryId, command.ownerId);
  if (state.kind === "wait") throw unavailable(state.why);
  if (state.kind === "skip") {
    log.warn({ deliveryId: command.deliveryId }, `reschedule not applied: ${state.why}`);
    return;
  }
  const movesDropoff = command.updateMask?.paths.includes("dropoff") && command.dropoff !== undefined;
  if (movesDropoff && state.progress.thirdPartyTrackingId) {
    log.warn({ deliveryId: command.deliveryId }, "reschedule not applied: an outside carrier's drop-off cannot be changed");
    return;
  }
  if (movesDropoff && state.progress.droneId) {
    try {
      await ctx.clients.drones.rerouteAssignment({ deliveryId: command.deliveryId, dropoff: command.dropoff });
    } catch (error) {
      if (!isFinalRefusal(error)) throw error;
      log.warn({ deliveryId: command.deliveryId, err: error }, "reschedule refused: the drone cannot be re-routed");
      return;
    }
  }
  try {
    await ctx.clients.deliveries.rescheduleDelivery({
      deliveryId: command.deliveryId,
      dropoff: command.dropoff,
      pickupTime: command.pickupTime,
      deadline: command.deadline,
      updateMask: command.updateMask,
    });
  } catch (error) {
    if (!isFinalRefusal(error)) throw error;
    log.warn({ deliveryId: command.deliveryId, err: error }, "reschedule refused by the delivery service");
  }
}

/**
 * Applies a cancellation: the drone is released (it turns home) or the third-party booking
 * cancelled, then the delivery is cancelled. Each call is idempotent, so a retry repeats them safely.
 */
export async function runCancel(ctx: SagaContext, command: CancelDeliveryCommand, log: Logger): Promise<void> {
  const state = await readiness(ctx, command.deliveryId, command.ownerId);
  if (state.kind === "wait") throw unavailable(state.why);
  if (state.kind === "skip") {
    log.warn({ deliveryId: command.deliveryId }, `cancel not applied: ${state.why}`);
    return;
  }
  const reason = command.reason || "cancelled by the customer";
  try {
    await ctx.clients.deliveries.cancelDelivery({ deliveryId: command.deliveryId, reason });
  } catch (error) {
    if (!isFinalRefusal(error)) throw error;
    // Completed (or otherwise ended) deliveries keep their drone's assignment as it is.
    log.warn({ deliveryId: command.deliveryId, err: error }, "cancel refused by the delivery service");
    return;
  }
  const { progress } = state;
  if (progress.droneId) await ctx.clients.drones.releaseAssignment({ deliveryId: command.deliveryId, reason });
  if (progress.thirdPartyTrackingId) await ctx.clients.thirdParty.cancelPickup({ deliveryId: command.deliveryId, reason });
  await completeStep(ctx.store, command.deliveryId, WorkflowStep.CANCEL).catch(() => undefined);
}
