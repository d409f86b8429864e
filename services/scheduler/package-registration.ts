/**
 * The workflow's package step: each parcel of the delivery is registered with the Package service
 * under the delivery. A parcel can be in one open delivery at a time: the Package service refuses
 * a parcel held by another delivery (PreconditionFailure PACKAGE_IN_DELIVERY, subject
 * `delivery:<id>`). The workflow then asks the Delivery service whether that delivery has ended
 * (or never came to be); if so the parcel is taken over from it (`replace_delivery_id`, checked
 * again by the Package service), otherwise the step fails for good: the parcel is on its way in
 * another delivery.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { PackageInfo } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { ScheduleDeliveryCommand } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { WorkflowStep } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { SagaContext } from "./schedule-saga.js";
import { callStep } from "./outcomes.js";

/** The PreconditionFailure type of a parcel held by another delivery. */
export const PACKAGE_IN_DELIVERY = "PACKAGE_IN_DELIVERY";

/** The delivery holding the parcel, from a PACKAGE_IN_DELIVERY refusal; undefined for any other error. */
export function holdingDelivery(error: unknown): string | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.FailedPrecondition) return undefined;
  for (const failure of error.findDetails(PreconditionFailureSchema)) {
    for (const violation of failure.violations) {
      if (violation.type === PACKAGE_IN_DELIVERY && violation.subject.startsWith("delivery:")) return violation.subject.slice("delivery:".length);
    }
  }
  return undefined;
}

const ENDED = new Set([DeliveryStage.COMPLETED, DeliveryStage.CANCELLED, DeliveryStage.FAILED]);

/** True when the delivery has ended, or has no record (its workflow never opened one). */
async function hasEnded(ctx: SagaContext, deliveryId: string): Promise<boolean> {
  try {
    const { status: current } = await ctx.clients.deliveries.getDeliveryStatus({ deliveryId });
    return current !== undefined && ENDED.has(current.stage);
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.NotFound) return true;
    throw error;
  }
}

async function registerOne(ctx: SagaContext, command: ScheduleDeliveryCommand, info: PackageInfo): Promise<void> {
  const upsert = (replaceDeliveryId: string) =>
    ctx.clients.packages.upsertPackage({
      package: { ...info, $typeName: undefined, ownerId: command.ownerId, deliveryId: command.deliveryId },
      replaceDeliveryId,
    });
  const what = `package ${info.packageId}`;
  try {
    await upsert("");
    return;
  } catch (error) {
    const holder = holdingDelivery(error);
    if (holder === undefined || !(await hasEnded(ctx, holder))) {
      await callStep(WorkflowStep.REGISTER_PACKAGES, what, () => Promise.reject(error));
      return;
    }
    await callStep(WorkflowStep.REGISTER_PACKAGES, what, () => upsert(holder));
  }
}

export async function registerPackages(ctx: SagaContext, command: ScheduleDeliveryCommand): Promise<void> {
  for (const info of command.packages) await registerOne(ctx, command, info);
}
