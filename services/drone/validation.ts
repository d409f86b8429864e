/**
 * Request checks of the DroneSchedulerService: each names every bad field by its proto path and
 * answers INVALID_ARGUMENT before anything is read or written.
 */
import type { PackageInfo } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { PackageSizeSchema } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import type { YearMonth } from "../../gen/dronedelivery/common/v1/time_pb.js";
import { DroneStatusSchema } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import type {
  AssignDroneRequest,
  GetUtilizationRequest,
  ListDronesRequest,
  ReleaseAssignmentRequest,
  RerouteAssignmentRequest,
} from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { TOKEN_ID_PATTERN, Violations } from "../../lib/validation/violations.js";
import { decodePageToken } from "./page-token.js";

export const MAX_PACKAGE_WEIGHT_KG = 1000;
export const MAX_TAG_LENGTH = 256;
/** The most parcels one delivery may hand to one drone. */
export const MAX_PACKAGES = 100;
export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_PAGE_SIZE = 100;

export function checkDeliveryId(violations: Violations, deliveryId: string, field = "delivery_id"): Violations {
  return violations.id(field, deliveryId, { pattern: TOKEN_ID_PATTERN });
}

function checkPackages(violations: Violations, packages: readonly PackageInfo[]): void {
  if (packages.length === 0) {
    violations.add("packages", "must contain at least one package");
    return;
  }
  if (packages.length > MAX_PACKAGES) {
    violations.add("packages", `must contain at most ${MAX_PACKAGES} packages`);
    return;
  }
  const firstIndexOf = new Map<string, number>();
  packages.forEach((p, i) => {
    const at = `packages[${i}]`;
    const before = violations.list.length;
    violations.id(`${at}.package_id`, p.packageId);
    if (violations.list.length === before && p.packageId !== "") {
      const first = firstIndexOf.get(p.packageId);
      if (first !== undefined) violations.add(`${at}.package_id`, `repeats packages[${first}].package_id`);
      else firstIndexOf.set(p.packageId, i);
    }
    violations
      .enumValue(`${at}.size`, p.size, PackageSizeSchema)
      .number(`${at}.weight_kg`, p.weightKg, { exclusiveMin: 0, max: MAX_PACKAGE_WEIGHT_KG })
      .text(`${at}.tag`, p.tag, { max: MAX_TAG_LENGTH });
  });
}

export function validateAssignDrone(request: AssignDroneRequest): void {
  const v = new Violations();
  checkDeliveryId(v, request.deliveryId);
  v.id("owner_id", request.ownerId).location("pickup", request.pickup).location("dropoff", request.dropoff);
  checkPackages(v, request.packages);
  v.throwIfAny();
}

export function validateReleaseAssignment(request: ReleaseAssignmentRequest): void {
  const v = new Violations();
  checkDeliveryId(v, request.deliveryId).text("reason", request.reason);
  v.throwIfAny();
}

export function validateRerouteAssignment(request: RerouteAssignmentRequest): void {
  const v = new Violations();
  checkDeliveryId(v, request.deliveryId).location("dropoff", request.dropoff);
  v.throwIfAny();
}

export function validateDeliveryId(deliveryId: string): void {
  checkDeliveryId(new Violations(), deliveryId).throwIfAny();
}

export function validateDroneId(droneId: string): void {
  new Violations().id("drone_id", droneId, { pattern: TOKEN_ID_PATTERN }).throwIfAny();
}

export interface ListDronesQuery {
  readonly pageSize: number;
  /** List drones with ids after this one; empty for the first page. */
  readonly after: string;
  readonly status: number;
}

export function validateListDrones(request: ListDronesRequest): ListDronesQuery {
  const v = new Violations();
  if (request.pageSize < 0 || request.pageSize > MAX_PAGE_SIZE) v.add("page_size", `must be between 0 and ${MAX_PAGE_SIZE}`);
  v.enumValue("status", request.status, DroneStatusSchema, { allowUnspecified: true });
  let after = "";
  if (request.pageToken !== "") {
    const decoded = decodePageToken(request.pageToken, request.status);
    if (decoded.ok) after = decoded.cursor.after;
    else v.add("page_token", decoded.reason);
  }
  v.throwIfAny();
  return { pageSize: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize, after, status: request.status };
}

function checkMonth(v: Violations, month: YearMonth | undefined): void {
  if (!month) {
    v.add("month", "is required");
    return;
  }
  if (month.year < 2000 || month.year > 9999) v.add("month.year", "must be between 2000 and 9999");
  if (month.month < 1 || month.month > 12) v.add("month.month", "must be between 1 and 12");
}

export function validateGetUtilization(request: GetUtilizationRequest): void {
  const v = new Violations().id("owner_id", request.ownerId);
  checkMonth(v, request.month);
  v.throwIfAny();
}
