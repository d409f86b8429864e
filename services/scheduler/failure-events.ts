/** Hands a failed workflow to the Supervisor: one WorkflowFailedEvent per delivery on WORKFLOW_FAILURES. */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient } from "nats";
import type { ScheduleDeliveryCommand } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { WorkflowFailedEventSchema, type WorkflowProgress } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { publishMessage } from "../../lib/nats/messages.js";
import { STREAMS, subjects } from "../../lib/nats/streams.js";

/**
 * Publishes the failure recorded in `progress` (state FAILED), with the request when known; a
 * repeat is stored once.
 */
export async function publishWorkflowFailure(js: JetStreamClient, progress: WorkflowProgress, command?: ScheduleDeliveryCommand): Promise<void> {
  const event = create(WorkflowFailedEventSchema, {
    deliveryId: progress.deliveryId,
    ownerId: progress.ownerId,
    failedStep: progress.failedStep,
    kind: progress.failureKind,
    error: progress.error,
    reason: progress.failureReason,
    progress,
    attempts: progress.attempts,
    eventTime: timestampNow(),
    command,
  });
  await publishMessage(js, subjects.workflowFailed(progress.deliveryId), WorkflowFailedEventSchema, event, {
    msgId: `${progress.deliveryId}:failed`,
    expectStream: STREAMS.WORKFLOW_FAILURES.name,
  });
}
