/**
 * The schedule workflow: open the delivery (stage Requested, so its customer follows it from the
 * start and a failure ends it visibly), check the account, register the packages, assign a drone
 * (or book a third-party carrier when no drone can carry the parcels), give the delivery its
 * carrier (stage Created). Every call is idempotent by delivery id, and every completed step is
 * recorded, so a redelivered command resumes where the last attempt stopped and nothing is done
 * twice.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ScheduleDeliveryCommand } from "../../gen/dronedelivery/ingestion/v1/commands_pb.js";
import { WorkflowState, WorkflowStep, type WorkflowProgress } from "../../gen/dronedelivery/workflow/v1/workflow_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import type { DomainClients } from "./clients.js";
import { callStep, PermanentFailure } from "./outcomes.js";
import { openRequestOf } from "../../lib/workflow/open-request.js";
import { registerPackages } from "./package-registration.js";
import { beginAttempt, type WorkflowRecord } from "./progress.js";
import type { WorkflowStore } from "./workflow-store.js";

export interface SagaContext {
  store: WorkflowStore;
  clients: DomainClients;
}

/** Who carries the parcels, as the delivery record needs it. */
type Carrier =
  | { kind: "drone"; droneId: string; pickupEta?: import("@bufbuild/protobuf/wkt").Timestamp; dropoffEta?: import("@bufbuild/protobuf/wkt").Timestamp }
  | { kind: "thirdParty"; carrier: string; trackingId: string; pickupEta?: import("@bufbuild/protobuf/wkt").Timestamp; dropoffEta?: import("@bufbuild/protobuf/wkt").Timestamp };

async function openDelivery(ctx: SagaContext, command: ScheduleDeliveryCommand): Promise<void> {
  await callStep(WorkflowStep.OPEN_DELIVERY, "delivery record", () => ctx.clients.deliveries.openDelivery(openRequestOf(command)));
}

async function checkAccount(ctx: SagaContext, command: ScheduleDeliveryCommand): Promise<void> {
  const answer = await callStep(WorkflowStep.CHECK_ACCOUNT, `account ${command.ownerId}`, () =>
    ctx.clients.accounts.checkAccountStatus({ accountId: command.ownerId }),
  );
  if (!answer.canOrder) {
    const reason = `account ${command.ownerId} may not order: ${answer.reason || "not active"}`;
    throw new PermanentFailure(WorkflowStep.CHECK_ACCOUNT, reason, create(StatusSchema, { code: Code.FailedPrecondition, message: reason }));
  }
}

async function bookThirdParty(ctx: SagaContext, command: ScheduleDeliveryCommand): Promise<Carrier> {
  const { pickup } = await callStep(WorkflowStep.ARRANGE_THIRD_PARTY, "third-party pickup", () =>
    ctx.clients.thirdParty.arrangePickup({
      deliveryId: command.deliveryId,
      ownerId: command.ownerId,
      pickup: command.pickup,
      dropoff: command.dropoff,
      packages: command.packages,
      ...(command.pickupTime ? { pickupWindow: { startTime: command.pickupTime, endTime: command.deadline } } : {}),
      deadline: command.deadline,
    }),
  );
  if (!pickup) throw new Error("third-party service answered without a booking");
  return { kind: "thirdParty", carrier: pickup.carrier, trackingId: pickup.trackingId, pickupEta: pickup.pickupEta, dropoffEta: pickup.deliveryEta };
}

/**
 * Assigns a drone; when the parcels are too heavy for every drone, books a carrier instead. The
 * carrier step is recorded (with the drone or the booking) before the delivery record is given it.
 */
async function arrangeCarrier(ctx: SagaContext, command: ScheduleDeliveryCommand, record: WorkflowRecord): Promise<Carrier> {
  if (!record.done(WorkflowStep.ARRANGE_THIRD_PARTY)) {
    try {
      const { assignment } = await ctx.clients.drones.assignDrone({
        deliveryId: command.deliveryId,
        ownerId: command.ownerId,
        pickup: command.pickup,
        dropoff: command.dropoff,
        packages: command.packages,
        expedited: command.expedited,
      });
      if (!assignment) throw new Error("drone service answered without an assignment");
      if (!record.done(WorkflowStep.ASSIGN_DRONE) || record.progress.droneId !== assignment.droneId) {
        await record.complete([WorkflowStep.ASSIGN_DRONE], (p) => (p.droneId = assignment.droneId));
      }
      return { kind: "drone", droneId: assignment.droneId, pickupEta: assignment.pickupEta, dropoffEta: assignment.dropoffEta };
    } catch (error) {
      const tooHeavy = error instanceof ConnectError && error.code === Code.FailedPrecondition;
      if (!tooHeavy) return callStep(WorkflowStep.ASSIGN_DRONE, "drone assignment", () => Promise.reject(error));
    }
  }
  const carrier = await bookThirdParty(ctx, command);
  if (carrier.kind === "thirdParty" && !record.done(WorkflowStep.ARRANGE_THIRD_PARTY)) {
    await record.complete([WorkflowStep.ARRANGE_THIRD_PARTY], (p) => {
      p.thirdPartyCarrier = carrier.carrier;
      p.thirdPartyTrackingId = carrier.trackingId;
    });
  }
  return carrier;
}

async function createDelivery(ctx: SagaContext, command: ScheduleDeliveryCommand, carrier: Carrier): Promise<void> {
  await callStep(WorkflowStep.CREATE_DELIVERY, "delivery record", () =>
    ctx.clients.deliveries.scheduleDelivery({
      deliveryId: command.deliveryId,
      ownerId: command.ownerId,
      pickup: command.pickup,
      dropoff: command.dropoff,
      pickupTime: command.pickupTime,
      deadline: command.deadline,
      expedited: command.expedited,
      confirmationRequired: command.confirmationRequired,
      packages: command.packages,
      carrier:
        carrier.kind === "drone"
          ? { case: "droneId", value: carrier.droneId }
          : { case: "thirdParty", value: { carrier: carrier.carrier, trackingId: carrier.trackingId } },
      pickupEta: carrier.pickupEta,
      deliveryEta: carrier.dropoffEta,
    }),
  );
}

/**
 * Runs (or resumes) the workflow of one schedule command. Returns the record as it ends; throws
 * a transient error to be retried later, or a PermanentFailure for the Supervisor.
 *
 * Each step is recorded before the next one starts, except that opening the delivery and checking
 * the account run side by side and are recorded together: both are idempotent (the open by
 * delivery id, the check reads only), neither has anything to undo, and a crash before their
 * record repeats both. Creating the delivery record and marking the workflow SUCCEEDED are one
 * write. A step that took effect but failed to be recorded because a later one failed is recorded
 * before the failure is handed on, so the Supervisor undoes what it did.
 */
export async function runSchedule(ctx: SagaContext, command: ScheduleDeliveryCommand, attempt: number): Promise<WorkflowProgress> {
  const record = await beginAttempt(
    ctx.store,
    command.deliveryId,
    command.ownerId,
    command.packages.map((p) => p.packageId),
    attempt,
  );
  if (record.progress.state !== WorkflowState.RUNNING) return record.progress;

  const opening: Promise<WorkflowStep | undefined>[] = [];
  if (!record.done(WorkflowStep.OPEN_DELIVERY)) opening.push(openDelivery(ctx, command).then(() => WorkflowStep.OPEN_DELIVERY));
  if (!record.done(WorkflowStep.CHECK_ACCOUNT)) opening.push(checkAccount(ctx, command).then(() => WorkflowStep.CHECK_ACCOUNT));
  if (opening.length > 0) {
    const settled = await Promise.allSettled(opening);
    const done = settled.flatMap((r) => (r.status === "fulfilled" && r.value !== undefined ? [r.value] : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      // The open step first (a failure of both reports the open), as if they ran in order.
      const first = settled[0]?.status === "rejected" ? (settled[0] as PromiseRejectedResult) : failed;
      if (done.length > 0) await record.complete(done).catch(() => undefined);
      throw first.reason;
    }
    await record.complete(done);
  }
  if (!record.done(WorkflowStep.REGISTER_PACKAGES)) {
    await registerPackages(ctx, command);
    await record.complete([WorkflowStep.REGISTER_PACKAGES]);
  }
  // Assignment and booking are repeated on resume (they are idempotent and answer the same), since
  // the delivery record needs what they return.
  const carrier = await arrangeCarrier(ctx, command, record);
  if (!record.done(WorkflowStep.CREATE_DELIVERY)) await createDelivery(ctx, command, carrier);
  return record.complete([WorkflowStep.CREATE_DELIVERY], () => {}, true);
}
