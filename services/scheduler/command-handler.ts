/**
 * Handles one message of DELIVERY_REQUESTS: decodes the command by its type header, runs it, and
 * decides the message's fate. Transient failures are retried with a growing delay; a permanent
 * failure, or a message about to run out of deliveries, is recorded in the saga log and handed to
 * the Supervisor as a WorkflowFailedEvent before the message is acknowledged: nothing accepted is
 * ever dropped silently.
 */
import type { JetStreamClient, JsMsg } from "nats";
import type { Logger } from "pino";
import {
  CancelDeliveryCommandSchema,
  RescheduleDeliveryCommandSchema,
  ScheduleDeliveryCommandSchema,
  type ScheduleDeliveryCommand,
} from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { FailureKind, WorkflowState, WorkflowStep } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { errorMessage } from "../../lib/grpc/errors.js";
import { rpcStatusOf } from "../../lib/grpc/status.js";
import { decodeMessage, MessageDecodeError, messageTypeOf } from "../../lib/nats/messages.js";
import { ack, backoffMs, retry, type WorkOutcome } from "../../lib/nats/work-consumer.js";
import { runCancel, runReschedule } from "./change-commands.js";
import { publishWorkflowFailure } from "./failure-events.js";
import { PermanentFailure } from "./outcomes.js";
import { markFailed, nextScheduleStep, WorkflowTakenOver } from "./progress.js";
import { runSchedule, type SagaContext } from "./schedule-saga.js";

export interface CommandHandlerOptions {
  /** Deliveries per message (the consumer's max_deliver). */
  maxDeliver: number;
  /** First retry delay; it doubles per attempt up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
}

export function createCommandHandler(ctx: SagaContext, js: JetStreamClient, log: Logger, options: CommandHandlerOptions) {
  async function fail(command: ScheduleDeliveryCommand, step: WorkflowStep, kind: FailureKind, reason: string, error: unknown): Promise<void> {
    const { deliveryId } = command;
    const progress = await markFailed(ctx.store, deliveryId, { step, kind, reason, error: rpcStatusOf(error) });
    if (progress.state === WorkflowState.FAILED) await publishWorkflowFailure(js, progress, command);
    log.warn({ deliveryId, step: WorkflowStep[step], kind: FailureKind[kind], reason }, "workflow failed; handed to the supervisor");
  }

  async function schedule(msg: JsMsg, attempt: number): Promise<WorkOutcome> {
    const command = decodeMessage(msg, ScheduleDeliveryCommandSchema);
    try {
      const progress = await runSchedule(ctx, command, attempt);
      // A workflow recorded as failed by an earlier attempt may not have reached the Supervisor.
      if (progress.state === WorkflowState.FAILED) await publishWorkflowFailure(js, progress, command);
      else log.info({ deliveryId: command.deliveryId, state: WorkflowState[progress.state] }, "schedule workflow done");
      return ack;
    } catch (error) {
      if (error instanceof WorkflowTakenOver) return ack;
      if (error instanceof PermanentFailure) {
        await fail(command, error.step, FailureKind.PERMANENT, error.reason, error);
        return ack;
      }
      if (attempt >= options.maxDeliver) {
        const reason = `gave up after ${attempt} attempts: ${errorMessage(error)}`;
        const progress = await ctx.store.get(command.deliveryId);
        const step = nextScheduleStep(progress?.value.completedSteps ?? []);
        await fail(command, step, FailureKind.RETRIES_EXHAUSTED, reason, error);
        return ack;
      }
      return retry(backoffMs(attempt, options.retryBaseMs, options.retryMaxMs), (error as Error).message);
    }
  }

  async function change(msg: JsMsg, attempt: number, run: () => Promise<void>): Promise<WorkOutcome> {
    try {
      await run();
      return ack;
    } catch (error) {
      if (attempt >= options.maxDeliver) {
        log.error({ subject: msg.subject, err: error, attempt }, "change command given up: the delivery never became ready");
        return ack;
      }
      return retry(backoffMs(attempt, options.retryBaseMs, options.retryMaxMs), (error as Error).message);
    }
  }

  return async function handle(msg: JsMsg): Promise<WorkOutcome> {
    const attempt = msg.info.redeliveryCount;
    try {
      switch (messageTypeOf(msg)) {
        case ScheduleDeliveryCommandSchema.typeName:
          return await schedule(msg, attempt);
        case RescheduleDeliveryCommandSchema.typeName: {
          const command = decodeMessage(msg, RescheduleDeliveryCommandSchema);
          return await change(msg, attempt, () => runReschedule(ctx, command, log));
        }
        case CancelDeliveryCommandSchema.typeName: {
          const command = decodeMessage(msg, CancelDeliveryCommandSchema);
          return await change(msg, attempt, () => runCancel(ctx, command, log));
        }
        default:
          log.error({ subject: msg.subject, type: messageTypeOf(msg) }, "unknown command type: dropped");
          return ack;
      }
    } catch (error) {
      if (error instanceof MessageDecodeError) {
        log.error({ subject: msg.subject, err: error }, "undecodable command: dropped");
        return ack;
      }
      throw error;
    }
  };
}
