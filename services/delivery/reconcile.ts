/**
 * The second line of defence against a stuck delivery: a periodic sweep that compares each open
 * delivery carried by a drone with the drone's assignment (the Drone service's record, which the
 * flight itself completes at the drop-off) and repairs what a crash or a lost event left behind.
 *
 *   assignment COMPLETED, delivery not Completed -> the delivery enters the stages it missed up
 *                                                   to Completed, at the assignment's drop-off
 *
 * Only deliveries that have not changed for `quietMs` are looked at (a delivery in flight changes
 * at every stage, and its position at least every few seconds), so the sweep costs one read per
 * quiet open delivery and one call per candidate. Every repair goes through the ledger's single
 * write path (revision-checked, status events published) and is counted in the metric
 * `reconcile_repairs_total{repair="completed_from_assignment"}`. Every instance may sweep: the
 * writes make concurrent sweeps harmless.
 */
import { clone } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DeliverySchema, DeliveryStage, type Delivery } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { AssignmentState, type Assignment } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { recordReconcileRepair } from "../../lib/observability/metrics.js";
import { startPeriodic, type Periodic } from "../../lib/service/periodic.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import type { DeliveryLedger } from "./ledger.js";
import { enterStage, type Decision } from "./lifecycle.js";
import { stagesTo } from "./progress.js";
import { isEnded } from "./stages.js";

export interface AssignmentLookup {
  /** The drone assignment of a delivery, or undefined when it has none. */
  assignmentOf(deliveryId: string): Promise<Assignment | undefined>;
}

export interface ReconcileOptions {
  /** How often to sweep; 0 turns the sweep off. */
  readonly intervalMs: number;
  /** An open delivery unchanged for this long is compared with its assignment. */
  readonly quietMs: number;
}

/** The record after its drone's completed assignment: every stage missed, up to Completed at the drop-off. */
export function completedFromAssignment(delivery: Delivery, assignment: Assignment, now: Date): Decision {
  if (isEnded(delivery.stage) || assignment.state !== AssignmentState.COMPLETED) return UNCHANGED;
  if (delivery.carrier.case !== "droneId" || delivery.carrier.value !== assignment.droneId) return UNCHANGED;
  const path = stagesTo(delivery.stage, DeliveryStage.COMPLETED);
  if (path.length === 0) return UNCHANGED;
  let next = clone(DeliverySchema, delivery);
  next.lastKnownLocation = assignment.dropoff ?? delivery.dropoff;
  for (const stage of path) next = enterStage(next, stage, now);
  return next;
}

/** Whether a record is a candidate: open, carried by a drone, and unchanged for `quietMs`. */
function isQuietDroneDelivery(delivery: Delivery, nowMs: number, quietMs: number): boolean {
  if (isEnded(delivery.stage) || delivery.carrier.case !== "droneId") return false;
  const changed = delivery.updateTime ? timestampMs(delivery.updateTime) : 0;
  return nowMs - changed >= quietMs;
}

export class DeliveryReconciler {
  constructor(
    private readonly ledger: DeliveryLedger,
    private readonly drones: AssignmentLookup,
    private readonly options: ReconcileOptions,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** One pass over the open deliveries; returns the ids it repaired. */
  async sweep(): Promise<string[]> {
    const repaired: string[] = [];
    for (const deliveryId of await this.ledger.deliveryIds()) {
      const found = await this.ledger.find(deliveryId);
      if (!found || !isQuietDroneDelivery(found.value, this.clock(), this.options.quietMs)) continue;
      const assignment = await this.drones.assignmentOf(deliveryId);
      if (!assignment || assignment.state !== AssignmentState.COMPLETED) continue;
      const result = await this.ledger.progress(deliveryId, found, (current, now) => completedFromAssignment(current, assignment, now));
      if (!result?.changed) continue;
      recordReconcileRepair("completed_from_assignment");
      this.log.warn({ deliveryId, droneId: assignment.droneId }, "delivery completed from its drone's assignment: its drop-off event was missed");
      repaired.push(deliveryId);
    }
    return repaired;
  }

  /** Sweeps every `intervalMs` until stopped; one sweep at a time. */
  start(): Periodic {
    return startPeriodic(this.options.intervalMs, () => this.sweep(), (error) =>
      this.log.warn({ err: error }, "reconciliation sweep failed; trying again at the next interval"),
    );
  }
}

/** NOT_FOUND from the Drone service: the delivery has no assignment. */
export function noAssignment(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.NotFound;
}
