/**
 * The saga log: one `WorkflowProgress` per delivery in the KV bucket `workflows`. It belongs to the
 * workflow context, which the Scheduler and the Supervisor form together: the Scheduler records
 * each step as it completes, the Supervisor reads it to find stale workflows and marks the ones it
 * compensates. Every write is revision-checked, so the two never overwrite each other.
 */
import type { JetStreamClient } from "nats";
import { WorkflowProgressSchema } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { openBucket } from "../../lib/nats/kv.js";
import { ProtoKvStore } from "../../lib/store/proto-kv-store.js";

export const WORKFLOWS_BUCKET = "workflows";

export type WorkflowStore = ProtoKvStore<typeof WorkflowProgressSchema>;

export async function openWorkflowStore(js: JetStreamClient): Promise<WorkflowStore> {
  const kv = await openBucket(js, WORKFLOWS_BUCKET, { description: "Workflow saga log: progress of each delivery's workflow" });
  return new ProtoKvStore(kv, WorkflowProgressSchema);
}
