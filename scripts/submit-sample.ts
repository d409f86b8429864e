/**
 * `npm run sample`: submits a sample delivery request through the Ingestion gRPC API of a running
 * platform (`make run`) and follows it until the workflow has scheduled it (or failed it),
 * printing the workflow's progress and the resulting delivery.
 *
 *   npm run sample                                   # acct-demo, a small parcel
 *   npm run sample -- --owner acct-suspended         # watch the workflow fail and be compensated
 *   npm run sample -- --weight 40                    # too heavy for a drone: a third-party carrier
 *   npm run sample -- --key my-key                   # repeat with the same idempotency key
 *
 * Environment: INGESTION_ADDRESS, DELIVERY_ADDRESS (defaults from lib/service/ports.ts), NATS_URL
 * (the saga log is read from the `workflows` bucket).
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConfirmationType, PackageSize } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliverySchema } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { IngestionService } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { WorkflowState, WorkflowStep } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { createClient, RpcError } from "../lib/grpc/index.js";
import { connectNats, drainQuietly } from "../lib/nats/connection.js";
import { serviceAddress } from "../lib/service/ports.js";
import { openWorkflowStore } from "../services/scheduler/workflow-store.js";

const { values } = parseArgs({
  options: {
    owner: { type: "string", default: "acct-demo" },
    weight: { type: "string", default: "1.5" },
    key: { type: "string" },
    "timeout-s": { type: "string", default: "30" },
  },
});

const ingestion = createClient(IngestionService, { address: serviceAddress(process.env, "ingestion"), defaultTimeoutMs: 5_000 });
const deliveries = createClient(DeliveryService, { address: serviceAddress(process.env, "delivery"), defaultTimeoutMs: 5_000 });
const nc = await connectNats({ name: "sample" });
const workflows = await openWorkflowStore(nc.jetstream());

try {
  const key = values.key ?? `sample-${randomUUID()}`;
  const weightKg = Number(values.weight);
  const accepted = await ingestion.scheduleDelivery({
    idempotencyKey: key,
    ownerId: values.owner,
    pickup: { latitude: 47.6097, longitude: -122.3331 },
    dropoff: { latitude: 47.6205, longitude: -122.3493 },
    deadline: timestampFromDate(new Date(Date.now() + 3 * 3_600_000)),
    confirmationRequired: ConfirmationType.NONE,
    packages: [{ packageId: `pkg-${key}`, size: weightKg > 10 ? PackageSize.LARGE : PackageSize.SMALL, weightKg, tag: "sample" }],
  });
  console.log(`accepted: delivery ${accepted.deliveryId}${accepted.duplicate ? " (repeat of an accepted request)" : ""}`);

  const until = Date.now() + Number(values["timeout-s"]) * 1000;
  let shown = "";
  for (;;) {
    const progress = (await workflows.get(accepted.deliveryId))?.value;
    const line = progress
      ? `workflow ${WorkflowState[progress.state]}; done: ${progress.completedSteps.map((s) => WorkflowStep[s]).join(", ") || "-"}`
      : "workflow not started yet";
    if (line !== shown) console.log(line);
    shown = line;
    if (progress && progress.state !== WorkflowState.RUNNING) {
      if (progress.failureReason) console.log(`failure: ${progress.failureReason}`);
      break;
    }
    if (Date.now() > until) {
      console.log("still running; is the platform up (make run)?");
      process.exitCode = 1;
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    const { delivery } = await deliveries.getDelivery({ deliveryId: accepted.deliveryId });
    if (delivery) console.log(JSON.stringify(toJson(DeliverySchema, delivery), null, 2));
  } catch (error) {
    if (error instanceof RpcError) console.log(`delivery: ${error.codeName} (${error.message})`);
    else throw error;
  }
} finally {
  ingestion.close();
  deliveries.close();
  await drainQuietly(nc);
}
