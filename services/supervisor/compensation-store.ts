/** The Supervisor's own data: one `CompensationProgress` per delivery in the KV bucket `compensations`. */
import type { JetStreamClient } from "nats";
import { CompensationProgressSchema } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { openBucket } from "../../lib/nats/kv.js";
import { ProtoKvStore } from "../../lib/store/proto-kv-store.js";

export const COMPENSATIONS_BUCKET = "compensations";

export type CompensationStore = ProtoKvStore<typeof CompensationProgressSchema>;

export async function openCompensationStore(js: JetStreamClient): Promise<CompensationStore> {
  const kv = await openBucket(js, COMPENSATIONS_BUCKET, { description: "Supervisor: compensation progress per delivery" });
  return new ProtoKvStore(kv, CompensationProgressSchema);
}
