/**
 * What the DeliveryService requests ask for, once the binding has checked them against the field
 * rules of the contract (ids, ranges, masks): the defaults of unset sizes, the page a page token
 * continues (tokens are this service's own, so only it can read them), the month a summary
 * covers, and the change a reschedule's mask names.
 */
import type {
  ConfirmDeliveryRequest,
  GetDeliverySummaryRequest,
  GetStageCountsRequest,
  ListAllDeliveriesRequest,
  ListDeliveriesRequest,
  RescheduleDeliveryRequest,
} from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { invalidArgument } from "../../lib/grpc/errors.js";
import type { ConfirmationInput, PlanChange } from "./lifecycle.js";
import { decodePageToken } from "./page-token.js";

export const DEFAULT_PAGE_SIZE = 20;
/** The latest failed deliveries GetStageCounts returns when the request names no number. */
export const DEFAULT_RECENT_FAILURES = 20;

/** The position after which a page starts: undefined for the first page (no token). */
function pageStart(token: string, scope: string): string | undefined {
  if (token === "") return undefined;
  const decoded = decodePageToken(token, scope);
  if ("problem" in decoded) throw invalidArgument([{ field: "page_token", description: decoded.problem }]);
  return decoded.after;
}

/** The change named by the update mask (the rules of the contract make it name known fields). */
export function planChange(request: RescheduleDeliveryRequest): PlanChange {
  const named = new Set(request.updateMask?.paths ?? []);
  return {
    ...(named.has("dropoff") && request.dropoff ? { dropoff: { value: request.dropoff } } : {}),
    ...(named.has("pickup_time") ? { pickupTime: { value: request.pickupTime } } : {}),
    ...(named.has("deadline") && request.deadline ? { deadline: { value: request.deadline } } : {}),
  };
}

export function confirmationOf(request: ConfirmDeliveryRequest): ConfirmationInput {
  return { type: request.confirmationType, confirmTime: request.confirmTime, proofReference: request.proofReference };
}

export interface ListQuery {
  readonly ownerId: string;
  readonly pageSize: number;
  /** The index position after which the page starts; undefined for the first page. */
  readonly after: string | undefined;
}

export function listQuery(request: ListDeliveriesRequest): ListQuery {
  return {
    ownerId: request.ownerId,
    pageSize: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize,
    after: pageStart(request.pageToken, request.ownerId),
  };
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

export function monthQuery(request: GetDeliverySummaryRequest): MonthQuery {
  const year = request.month?.year ?? 0;
  const index = (request.month?.month ?? 1) - 1;
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

export function listAllQuery(request: ListAllDeliveriesRequest): ListAllQuery {
  return {
    stage: request.stage,
    pageSize: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize,
    after: pageStart(request.pageToken, allDeliveriesScope(request.stage)),
  };
}

export function recentFailuresLimit(request: GetStageCountsRequest): number {
  return request.recentFailuresLimit === 0 ? DEFAULT_RECENT_FAILURES : request.recentFailuresLimit;
}
