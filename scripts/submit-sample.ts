/**
 * `npm run sample`: submits a sample delivery request through the public API of a running
 * platform (`make run`: the gateway, as the account's client would, with a token minted for it)
 * and follows it until the workflow has scheduled it (or failed it), printing the workflow's
 * progress and the resulting delivery.
 *
 *   npm run sample                                   # acct-demo, a small parcel
 *   npm run sample -- --owner acct-suspended         # watch the workflow fail and be compensated
 *   npm run sample -- --weight 40                    # too heavy for a drone: a third-party carrier
 *   npm run sample -- --key my-key                   # repeat with the same idempotency key
 *
 * Environment: GATEWAY_URL (default http://127.0.0.1:8080), GATEWAY_JWT_SECRET (default the
 * development secret of `make run`), NATS_URL (the saga log is read from the `workflows` bucket).
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DeliveryApiService } from "../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { ConfirmationType, DeliverySchema, PackageSize } from "../gen/dronedelivery/api/v1/resources_pb.js";
import { WorkflowState, WorkflowStep } from "../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { DEFAULT_DEV_SECRET_FILE } from "../gateway/config.js";
import { loadOrCreateDevSecret } from "../gateway/dev-secret.js";
import { mintToken } from "../gateway/tokens.js";
import { connectNatsAs, drainQuietly } from "../lib/nats/connection.js";
import { openWorkflowStore } from "../services/scheduler/workflow-store.js";

const { values } = parseArgs({
  options: {
    owner: { type: "string", default: "acct-demo" },
    weight: { type: "string", default: "1.5" },
    key: { type: "string" },
    "timeout-s": { type: "string", default: "30" },
  },
});

/** A one-line explanation of a failed call, with the fields the platform refused. */
function explain(error: unknown): string {
  if (error instanceof ConnectError) {
    const fields = error
      .findDetails(BadRequestSchema)
      .flatMap((d) => d.fieldViolations.map((v) => `${v.field}: ${v.description}`));
    const hint =
      error.code === Code.Unavailable || error.code === Code.Unknown
        ? " (is the platform up? make run)"
        : error.code === Code.Unauthenticated
          ? " (a token signed with another secret? set GATEWAY_JWT_SECRET or GATEWAY_DEV_SECRET_FILE as make run has them)"
          : "";
    const unsaid = fields.filter((f) => !error.rawMessage.includes(f));
    const detail = unsaid.length > 0 ? ` [${unsaid.join("; ")}]` : "";
    return `the platform refused the request: ${Code[error.code]}: ${error.rawMessage}${detail}${hint}`;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/ECONNREFUSED|CONNECTION_REFUSED/i.test(message)) return `cannot reach the platform (${message}); is it up (make run)?`;
  return message;
}

const weightKg = Number(values.weight);
if (!Number.isFinite(weightKg) || weightKg <= 0) {
  console.error(`--weight must be a positive number of kilograms, got ${values.weight}`);
  process.exit(2);
}
const timeoutS = Number(values["timeout-s"]);
if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
  console.error(`--timeout-s must be a positive number of seconds, got ${values["timeout-s"]}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const secret = process.env["GATEWAY_JWT_SECRET"]?.trim() || loadOrCreateDevSecret(process.env["GATEWAY_DEV_SECRET_FILE"] ?? DEFAULT_DEV_SECRET_FILE);
  const api = createClient(
    DeliveryApiService,
    createConnectTransport({ baseUrl: process.env["GATEWAY_URL"]?.trim() || "http://127.0.0.1:8080", httpVersion: "1.1" }),
  );
  const callOptions = { headers: { authorization: `Bearer ${await mintToken(values.owner, secret, 600)}` }, timeoutMs: 5_000 };
  const nc = await connectNatsAs("admin", process.env, { name: "sample" });
  const workflows = await openWorkflowStore(nc.jetstream());

  try {
    const key = values.key ?? `sample-${randomUUID()}`;
    const accepted = await api.scheduleDelivery(
      {
        idempotencyKey: key,
        pickup: { latitude: 47.6097, longitude: -122.3331 },
        dropoff: { latitude: 47.6205, longitude: -122.3493 },
        deadline: timestampFromDate(new Date(Date.now() + 3 * 3_600_000)),
        confirmationRequired: ConfirmationType.NONE,
        packageInfo: { packageId: `pkg-${key}`, size: weightKg > 10 ? PackageSize.LARGE : PackageSize.SMALL, weightKg, tag: "sample" },
      },
      callOptions,
    );
    console.log(`accepted: delivery ${accepted.deliveryId}`);

    const until = Date.now() + timeoutS * 1000;
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
      const { delivery } = await api.getDelivery({ deliveryId: accepted.deliveryId }, callOptions);
      if (delivery) console.log(JSON.stringify(toJson(DeliverySchema, delivery), null, 2));
    } catch (error) {
      if (error instanceof ConnectError) console.log(`delivery: ${error.message}`);
      else throw error;
    }
  } finally {
    await drainQuietly(nc);
  }
}

main().catch((error: unknown) => {
  console.error(explain(error));
  process.exitCode = 1;
});
