/**
 * Request checks that need no stored data. Each names every bad field by its proto path and
 * throws INVALID_ARGUMENT (google.rpc.BadRequest) before anything is read or written.
 */
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ConfirmationTypeSchema, PackageSizeSchema, type PackageInfo } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import type {
  CancelDeliveryRequest,
  ConfirmDeliveryRequest,
  FailDeliveryRequest,
  GetDeliverySummaryRequest,
  ListDeliveriesRequest,
  OpenDeliveryRequest,
  RescheduleDeliveryRequest,
  ScheduleDeliveryRequest,
} from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DeliveryFailureCodeSchema, DeliveryStageSchema, type DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { GetStageCountsRequest, ListAllDeliveriesRequest } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { TOKEN_ID_PATTERN, Violations } from "../../lib/validation/violations.js";
import type { ConfirmationInput, PlanChange } from "./lifecycle.js";
import { decodePageToken } from "./page-token.js";

export const MAX_PACKAGES = 10;
export const MAX_REASON_LENGTH = 1024;
export const MAX_PROOF_REFERENCE_LENGTH = 1024;
export const MAX_TAG_LENGTH = 256;
export const MAX_CARRIER_TEXT_LENGTH = 128;
export const MAX_PACKAGE_WEIGHT_KG = 1000;
export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;
export const RESCHEDULE_PATHS = ["dropoff", "pickup_time", "deadline"] as const;

/** A delivery id: one NATS subject token (letters, digits, '-' and '_'). */
export function deliveryId(violations: Violations, field: string, value: string): Violations {
  return violations.id(field, value, { pattern: TOKEN_ID_PATTERN });
}

/** Just a delivery id (the reads). */
export function requireDeliveryId(value: string): void {
  deliveryId(new Violations(), "delivery_id", value).throwIfAny();
}

/** A valid timestamp that has passed the basic check, for comparisons. */
function validTime(violations: Violations, field: string, value: Timestamp | undefined): Timestamp | undefined {
  return value && !violations.list.some((v) => v.field === field) ? value : undefined;
}

/** `pickup_time` must not lie after `deadline` (when both are set and valid). */
function pickupNotAfterDeadline(violations: Violations, pickupTime: Timestamp | undefined, deadline: Timestamp | undefined): void {
  const pickup = validTime(violations, "pickup_time", pickupTime);
  const end = validTime(violations, "deadline", deadline);
  if (pickup && end && timestampMs(pickup) > timestampMs(end)) violations.add("pickup_time", "must not be after the deadline");
}

function packages(violations: Violations, list: readonly PackageInfo[]): void {
  if (list.length === 0) violations.add("packages", "at least one package is required");
  if (list.length > MAX_PACKAGES) violations.add("packages", `at most ${MAX_PACKAGES} packages are allowed`);
  const firstIndexOf = new Map<string, number>();
  list.forEach((pkg, i) => {
    const at = `packages[${i}]`;
    violations
      .id(`${at}.package_id`, pkg.packageId)
      .enumValue(`${at}.size`, pkg.size, PackageSizeSchema)
      .number(`${at}.weight_kg`, pkg.weightKg, { exclusiveMin: 0, max: MAX_PACKAGE_WEIGHT_KG })
      .text(`${at}.tag`, pkg.tag, { max: MAX_TAG_LENGTH });
    if (pkg.packageId === "") return;
    const first = firstIndexOf.get(pkg.packageId);
    if (first === undefined) firstIndexOf.set(pkg.packageId, i);
    else violations.add(`${at}.package_id`, `repeats packages[${first}].package_id`);
  });
}

function carrier(violations: Violations, request: ScheduleDeliveryRequest): void {
  switch (request.carrier.case) {
    case "droneId":
      violations.id("drone_id", request.carrier.value, { pattern: TOKEN_ID_PATTERN });
      return;
    case "thirdParty":
      violations
        .text("third_party.carrier", request.carrier.value.carrier, { required: true, max: MAX_CARRIER_TEXT_LENGTH })
        .text("third_party.tracking_id", request.carrier.value.trackingId, { required: true, max: MAX_CARRIER_TEXT_LENGTH });
      return;
    case undefined:
      violations.add("carrier", "a drone_id or a third_party carrier is required");
  }
}

/**
 * An accepted request to record. Its deadline was checked when it was accepted and may have
 * passed since (the record must still be made, so that the delivery can end visibly).
 */
export function validateOpen(request: OpenDeliveryRequest): void {
  const violations = deliveryId(new Violations(), "delivery_id", request.deliveryId)
    .id("owner_id", request.ownerId)
    .location("pickup", request.pickup)
    .location("dropoff", request.dropoff)
    .timestamp("pickup_time", request.pickupTime)
    .timestamp("deadline", request.deadline, { required: true })
    .enumValue("confirmation_required", request.confirmationRequired, ConfirmationTypeSchema)
    .timestamp("accept_time", request.acceptTime);
  packages(violations, request.packages);
  violations.throwIfAny();
}

export function validateSchedule(request: ScheduleDeliveryRequest, now: Date): void {
  const violations = deliveryId(new Violations(), "delivery_id", request.deliveryId)
    .id("owner_id", request.ownerId)
    .location("pickup", request.pickup)
    .location("dropoff", request.dropoff)
    .timestamp("pickup_time", request.pickupTime)
    .timestamp("deadline", request.deadline, { required: true, future: true, now })
    .enumValue("confirmation_required", request.confirmationRequired, ConfirmationTypeSchema)
    .timestamp("pickup_eta", request.pickupEta)
    .timestamp("delivery_eta", request.deliveryEta);
  pickupNotAfterDeadline(violations, request.pickupTime, request.deadline);
  packages(violations, request.packages);
  carrier(violations, request);
  violations.throwIfAny();
}

/** The change named by the update mask, with each named field checked. */
export function validateReschedule(request: RescheduleDeliveryRequest, now: Date): PlanChange {
  const violations = deliveryId(new Violations(), "delivery_id", request.deliveryId);
  const paths = request.updateMask?.paths ?? [];
  if (paths.length === 0) violations.add("update_mask", `is required: name any of ${RESCHEDULE_PATHS.join(", ")}`);
  for (const path of paths) {
    if (!(RESCHEDULE_PATHS as readonly string[]).includes(path)) {
      violations.add("update_mask", `unknown path ${JSON.stringify(path)}: use ${RESCHEDULE_PATHS.join(", ")}`);
    }
  }
  const named = new Set(paths);
  if (named.has("dropoff")) violations.location("dropoff", request.dropoff);
  if (named.has("pickup_time")) violations.timestamp("pickup_time", request.pickupTime);
  if (named.has("deadline")) violations.timestamp("deadline", request.deadline, { required: true, future: true, now });
  if (named.has("pickup_time") && named.has("deadline")) pickupNotAfterDeadline(violations, request.pickupTime, request.deadline);
  violations.throwIfAny();
  return {
    ...(named.has("dropoff") && request.dropoff ? { dropoff: { value: request.dropoff } } : {}),
    ...(named.has("pickup_time") ? { pickupTime: { value: request.pickupTime } } : {}),
    ...(named.has("deadline") && request.deadline ? { deadline: { value: request.deadline } } : {}),
  };
}

export function validateCancel(request: CancelDeliveryRequest): void {
  deliveryId(new Violations(), "delivery_id", request.deliveryId)
    .text("reason", request.reason, { max: MAX_REASON_LENGTH })
    .throwIfAny();
}

export function validateFail(request: FailDeliveryRequest): void {
  const violations = deliveryId(new Violations(), "delivery_id", request.deliveryId)
    .text("reason", request.reason, { required: true, max: MAX_REASON_LENGTH })
    .enumValue("failure_code", request.failureCode, DeliveryFailureCodeSchema, { allowUnspecified: true });
  if (request.request && request.request.deliveryId !== request.deliveryId) violations.add("request.delivery_id", "must be the delivery_id");
  violations.throwIfAny();
  if (request.request) validateOpen(request.request);
}

export function validateConfirm(request: ConfirmDeliveryRequest, now: Date): ConfirmationInput {
  deliveryId(new Violations(), "delivery_id", request.deliveryId)
    .enumValue("confirmation_type", request.confirmationType, ConfirmationTypeSchema)
    .timestamp("confirm_time", request.confirmTime, { notFuture: true, now })
    .text("proof_reference", request.proofReference, { max: MAX_PROOF_REFERENCE_LENGTH })
    .throwIfAny();
  return { type: request.confirmationType, confirmTime: request.confirmTime, proofReference: request.proofReference };
}

export interface ListQuery {
  readonly ownerId: string;
  readonly pageSize: number;
  /** The index position after which the page starts; undefined for the first page. */
  readonly after: string | undefined;
}

export function validateList(request: ListDeliveriesRequest): ListQuery {
  const violations = new Violations().id("owner_id", request.ownerId);
  if (request.pageSize < 0 || request.pageSize > MAX_PAGE_SIZE) {
    violations.add("page_size", `must be between 1 and ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE})`);
  }
  let after: string | undefined;
  if (request.pageToken !== "") {
    const decoded = decodePageToken(request.pageToken, request.ownerId);
    if ("problem" in decoded) violations.add("page_token", decoded.problem);
    else after = decoded.after;
  }
  violations.throwIfAny();
  return { ownerId: request.ownerId, pageSize: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize, after };
}

export interface MonthQuery {
  readonly ownerId: string;
  readonly year: number;
  readonly month: number;
  /** The first millisecond of the month (UTC). */
  readonly startMs: number;
  /** The first millisecond of the next month (UTC). */
  readonly endMs: number;
}

export function validateSummary(request: GetDeliverySummaryRequest): MonthQuery {
  const violations = new Violations().id("owner_id", request.ownerId);
  const month = request.month;
  if (!month) violations.add("month", "is required");
  else {
    violations.number("month.year", month.year, { min: 2000, max: 9999 }).number("month.month", month.month, { min: 1, max: 12 });
  }
  violations.throwIfAny();
  const year = month?.year ?? 0;
  const index = (month?.month ?? 1) - 1;
  return {
    ownerId: request.ownerId,
    year,
    month: index + 1,
    startMs: Date.UTC(year, index, 1),
    endMs: Date.UTC(year, index + 1, 1),
  };
}

/** A page of every owner's deliveries, as ListAllDeliveries asks for it. */
export interface ListAllQuery {
  readonly stage: DeliveryStage;
  readonly pageSize: number;
  /** Index position after which the page starts. */
  readonly after: string | undefined;
}

/** The scope a ListAllDeliveries page token is issued for: not an owner id (no owner id has '*'). */
export function allDeliveriesScope(stage: DeliveryStage): string {
  return `*all.${stage}`;
}

export function validateListAll(request: ListAllDeliveriesRequest): ListAllQuery {
  const violations = new Violations();
  if (DeliveryStageSchema.values.every((v) => v.number !== request.stage)) violations.add("stage", "is not a delivery stage");
  if (request.pageSize < 0 || request.pageSize > MAX_PAGE_SIZE) {
    violations.add("page_size", `must be between 1 and ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE})`);
  }
  let after: string | undefined;
  if (request.pageToken !== "") {
    const decoded = decodePageToken(request.pageToken, allDeliveriesScope(request.stage));
    if ("problem" in decoded) violations.add("page_token", decoded.problem);
    else after = decoded.after;
  }
  violations.throwIfAny();
  return { stage: request.stage, pageSize: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize, after };
}

/** The most failed deliveries GetStageCounts returns, and its default. */
export const MAX_RECENT_FAILURES = 100;
export const DEFAULT_RECENT_FAILURES = 20;

export function validateStageCounts(request: GetStageCountsRequest): number {
  if (request.recentFailuresLimit < 0 || request.recentFailuresLimit > MAX_RECENT_FAILURES) {
    new Violations().add("recent_failures_limit", `must be between 0 and ${MAX_RECENT_FAILURES} (0 means ${DEFAULT_RECENT_FAILURES})`).throwIfAny();
  }
  return request.recentFailuresLimit === 0 ? DEFAULT_RECENT_FAILURES : request.recentFailuresLimit;
}
