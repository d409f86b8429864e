/**
 * The rules of a delivery's life, as pure functions from the stored record (and the request) to
 * the next record. They decide; they do not store. Each returns the new record, `UNCHANGED` when
 * the request changes nothing (a repeat), or throws the ConnectError to answer. They may run more
 * than once for one call (a lost revision race re-reads and decides again), so they have no side
 * effects.
 *
 * Every change of stage goes through `enterStage`, which enforces that stages only move forward
 * and appends the history entry.
 */
import { clone, create, equals, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, timestampMs, TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { LocationSchema, type Location } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { ConfirmationTypeSchema, type ConfirmationType } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import {
  ConfirmationSchema,
  DeliverySchema,
  DeliveryStage,
  StageChangeSchema,
  type Delivery,
} from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import {
  ScheduleDeliveryRequestSchema,
  type OpenDeliveryRequest,
  type ScheduleDeliveryRequest,
} from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { DeliveryFailureCode } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { alreadyExists, failedPrecondition, invalidArgument } from "../../lib/grpc/errors.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { isEnded, isRequested, mayEnter, stageName } from "./stages.js";

export type Decision = Delivery | typeof UNCHANGED;

/** The google.rpc.PreconditionFailure type of every stage conflict. */
export const STAGE_CONFLICT = "DELIVERY_STAGE";

function stageConflict(delivery: Delivery, description: string): Error {
  return failedPrecondition(description, [{ type: STAGE_CONFLICT, subject: `delivery:${delivery.deliveryId}`, description }]);
}

function sameMessage<Desc extends DescMessage>(schema: Desc, a: MessageShape<Desc> | undefined, b: MessageShape<Desc> | undefined): boolean {
  if (!a || !b) return a === b;
  return equals(schema, a, b);
}

/**
 * The one place where a delivery enters a stage: refuses a move backward or out of a final stage
 * (FAILED_PRECONDITION), appends the history entry, and keeps the derived fields in line (the
 * pickup ETA is dropped once the parcels are picked up; the end reason is set when the delivery is
 * cancelled or fails). Entry times strictly increase along the history (a stage entered within the
 * millisecond of the previous one is dated a millisecond later), so the stage and the time name an
 * entry, also for a Rescheduled entered again.
 */
export function enterStage(delivery: Delivery, stage: DeliveryStage, now: Date, reason = ""): Delivery {
  if (!mayEnter(delivery.stage, stage)) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is ${stageName(delivery.stage)}; it cannot move to ${stageName(stage)}`);
  }
  const previous = delivery.history.at(-1)?.changeTime;
  const at = timestampFromDate(previous && timestampMs(previous) >= now.getTime() ? new Date(timestampMs(previous) + 1) : now);
  const next = clone(DeliverySchema, delivery);
  next.stage = stage;
  next.history.push(create(StageChangeSchema, { stage, changeTime: at, reason }));
  next.updateTime = at;
  if (stage === DeliveryStage.HEADED_TO_DROPOFF || stage === DeliveryStage.COMPLETED) next.pickupEta = undefined;
  if (stage === DeliveryStage.CANCELLED || stage === DeliveryStage.FAILED) next.endReason = reason;
  return next;
}

// ---------------------------------------------------------------------------------------------
// Schedule

/** A new delivery at stage Created, from a validated request; it starts at the pickup location. */
export function newDelivery(request: ScheduleDeliveryRequest, now: Date): Delivery {
  return enterStage(withCarrier(draftOf(request, now), request), DeliveryStage.CREATED, now);
}

/**
 * A new delivery at stage Requested, from a validated open request: accepted, no carrier yet. Its
 * creation time is the time the request was accepted, so it keeps its place among its owner's
 * deliveries however late the record is written.
 */
export function openedDelivery(request: OpenDeliveryRequest, now: Date): Delivery {
  const draft = draftOf(scheduleRequestOf(request), request.acceptTime ? timestampDate(request.acceptTime) : now);
  return enterStage(draft, DeliveryStage.REQUESTED, now);
}

/** An open request as the schedule request it begins (without a carrier), as the first request of the id is kept. */
export function scheduleRequestOf(request: OpenDeliveryRequest): ScheduleDeliveryRequest {
  return create(ScheduleDeliveryRequestSchema, {
    deliveryId: request.deliveryId,
    ownerId: request.ownerId,
    pickup: request.pickup,
    dropoff: request.dropoff,
    pickupTime: request.pickupTime,
    deadline: request.deadline,
    expedited: request.expedited,
    confirmationRequired: request.confirmationRequired,
    packages: request.packages,
  });
}

function draftOf(request: ScheduleDeliveryRequest, createdAt: Date): Delivery {
  return create(DeliverySchema, {
    deliveryId: request.deliveryId,
    ownerId: request.ownerId,
    pickup: request.pickup,
    dropoff: request.dropoff,
    pickupTime: request.pickupTime,
    deadline: request.deadline,
    expedited: request.expedited,
    confirmationRequired: request.confirmationRequired,
    packages: request.packages,
    lastKnownLocation: request.pickup,
    createTime: timestampFromDate(createdAt),
  });
}

function withCarrier(delivery: Delivery, request: ScheduleDeliveryRequest): Delivery {
  const next = clone(DeliverySchema, delivery);
  next.carrier = clone(ScheduleDeliveryRequestSchema, request).carrier;
  next.pickupEta = request.pickupEta;
  next.deliveryEta = request.deliveryEta;
  return next;
}

function sameCarrier(delivery: Delivery, request: ScheduleDeliveryRequest): boolean {
  const a = delivery.carrier;
  const b = request.carrier;
  if (a.case === "droneId" && b.case === "droneId") return a.value === b.value;
  if (a.case === "thirdParty" && b.case === "thirdParty") return a.value.carrier === b.value.carrier && a.value.trackingId === b.value.trackingId;
  return false;
}

/**
 * A stored delivery given the carrier of a schedule request of the same content: a Requested
 * delivery enters Created with it; one that has this carrier already is a repeat. Another carrier
 * answers ALREADY_EXISTS; an ended delivery FAILED_PRECONDITION (its workflow was taken over).
 */
export function assignCarrier(delivery: Delivery, request: ScheduleDeliveryRequest, now: Date): Decision {
  if (delivery.carrier.case !== undefined) {
    if (sameCarrier(delivery, request)) return UNCHANGED;
    throw alreadyExists(`delivery ${delivery.deliveryId} (with another carrier)`);
  }
  if (!isRequested(delivery.stage)) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is ${stageName(delivery.stage)}; it can no longer be given a carrier`);
  }
  return enterStage(withCarrier(delivery, request), DeliveryStage.CREATED, now);
}

/**
 * True when two schedule requests describe the same delivery: equal in everything but the carrier
 * and the ETAs (the carrier is compared on the record: a Requested delivery has none yet; the ETAs
 * are estimates a retrying caller may have computed again).
 */
export function sameSchedule(a: ScheduleDeliveryRequest, b: ScheduleDeliveryRequest): boolean {
  const content = (request: ScheduleDeliveryRequest) => {
    const copy = clone(ScheduleDeliveryRequestSchema, request);
    copy.pickupEta = undefined;
    copy.deliveryEta = undefined;
    copy.carrier = { case: undefined };
    return copy;
  };
  return equals(ScheduleDeliveryRequestSchema, content(a), content(b));
}

// ---------------------------------------------------------------------------------------------
// Reschedule

/** A validated change of plan: the fields named by the update mask, with their new values. */
export interface PlanChange {
  readonly dropoff?: { readonly value: Location };
  readonly pickupTime?: { readonly value: Timestamp | undefined };
  readonly deadline?: { readonly value: Timestamp };
}

/**
 * Applies a change of plan. Before the drone sets off (Created, Rescheduled) the delivery moves to
 * Rescheduled with a history entry; once it is under way the change is applied and the stage stays
 * (stages never move back). A change that leaves the plan as it is changes nothing. The pickup
 * time must not lie after the deadline that results.
 */
export function reschedule(delivery: Delivery, change: PlanChange, now: Date): Decision {
  if (isEnded(delivery.stage)) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is ${stageName(delivery.stage)}; it can no longer be rescheduled`);
  }
  if (isRequested(delivery.stage)) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is still being scheduled; it can be rescheduled once its carrier is assigned`);
  }
  const dropoff = change.dropoff ? change.dropoff.value : delivery.dropoff;
  const pickupTime = change.pickupTime ? change.pickupTime.value : delivery.pickupTime;
  const deadline = change.deadline ? change.deadline.value : delivery.deadline;
  if (pickupTime && deadline && timestampMs(pickupTime) > timestampMs(deadline)) {
    const field = change.pickupTime ? "pickup_time" : "deadline";
    const description = change.pickupTime ? "must not be after the deadline" : "must not be before the delivery's pickup_time";
    throw invalidArgument([{ field, description }]);
  }
  if (
    sameMessage(LocationSchema, dropoff, delivery.dropoff) &&
    sameMessage(TimestampSchema, pickupTime, delivery.pickupTime) &&
    sameMessage(TimestampSchema, deadline, delivery.deadline)
  ) {
    return UNCHANGED;
  }
  const next = clone(DeliverySchema, delivery);
  next.dropoff = dropoff;
  next.pickupTime = pickupTime;
  next.deadline = deadline;
  next.updateTime = timestampFromDate(now);
  return mayEnter(next.stage, DeliveryStage.RESCHEDULED) ? enterStage(next, DeliveryStage.RESCHEDULED, now) : next;
}

// ---------------------------------------------------------------------------------------------
// Cancel and fail

/** Cancels a delivery; a cancelled one stays as it is. */
export function cancel(delivery: Delivery, reason: string, now: Date): Decision {
  if (delivery.stage === DeliveryStage.CANCELLED) return UNCHANGED;
  if (isEnded(delivery.stage)) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is ${stageName(delivery.stage)}; it can no longer be cancelled`);
  }
  return enterStage(delivery, DeliveryStage.CANCELLED, now, reason);
}

/** Marks a delivery failed, with the reason for people and the code for programs; a failed one stays as it is. */
export function fail(delivery: Delivery, reason: string, code: DeliveryFailureCode, now: Date): Decision {
  if (delivery.stage === DeliveryStage.FAILED) return UNCHANGED;
  if (isEnded(delivery.stage)) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is ${stageName(delivery.stage)}; it can no longer fail`);
  }
  const next = enterStage(delivery, DeliveryStage.FAILED, now, reason);
  next.failureCode = code;
  return next;
}

// ---------------------------------------------------------------------------------------------
// Confirm

/** A validated confirmation of receipt; `confirmTime` unset means now. */
export interface ConfirmationInput {
  readonly type: ConfirmationType;
  readonly confirmTime: Timestamp | undefined;
  readonly proofReference: string;
}

function confirmationName(type: ConfirmationType): string {
  return ConfirmationTypeSchema.values.find((v) => v.number === type)?.localName ?? `type ${type}`;
}

/** The same confirmation: same type and proof, and the same time when the caller gave one. */
function sameConfirmation(stored: Delivery["confirmation"], input: ConfirmationInput): boolean {
  if (!stored) return false;
  if (stored.type !== input.type || stored.proofReference !== input.proofReference) return false;
  return !input.confirmTime || sameMessage(TimestampSchema, stored.confirmTime, input.confirmTime);
}

/**
 * Records the recipient's confirmation, which completes the delivery: the parcels are with the
 * recipient at the drop-off location. The type must be the one the delivery requires. A
 * delivery already completed without a confirmation (dropped off) records it and stays Completed.
 */
export function confirm(delivery: Delivery, input: ConfirmationInput, now: Date): Decision {
  if (delivery.stage === DeliveryStage.CANCELLED || delivery.stage === DeliveryStage.FAILED) {
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} is ${stageName(delivery.stage)}; it cannot be confirmed`);
  }
  if (input.type !== delivery.confirmationRequired) {
    const description = `delivery ${delivery.deliveryId} requires confirmation ${confirmationName(delivery.confirmationRequired)}, not ${confirmationName(input.type)}`;
    throw failedPrecondition(description, [{ type: "CONFIRMATION_TYPE", subject: `delivery:${delivery.deliveryId}`, description }]);
  }
  if (delivery.confirmation) {
    if (sameConfirmation(delivery.confirmation, input)) return UNCHANGED;
    throw stageConflict(delivery, `delivery ${delivery.deliveryId} was already confirmed differently`);
  }
  const at = timestampFromDate(now);
  const next = clone(DeliverySchema, delivery);
  next.confirmation = create(ConfirmationSchema, {
    type: input.type,
    confirmTime: input.confirmTime ?? at,
    proofReference: input.proofReference,
  });
  next.updateTime = at;
  if (next.stage === DeliveryStage.COMPLETED) return next;
  next.lastKnownLocation = next.dropoff;
  return enterStage(next, DeliveryStage.COMPLETED, now);
}
