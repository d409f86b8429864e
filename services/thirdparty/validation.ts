/**
 * Request validation of the ThirdPartyTransportService: every bad field is named at once, with its
 * proto path (`packages[1].weight_kg`, `pickup_window.end_time`).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { PackageSizeSchema, type PackageInfo } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import type { TimeWindow } from "../../gen/dronedelivery/common/v1/time_pb.js";
import type {
  ArrangePickupRequest,
  CancelPickupRequest,
  GetPickupRequest,
} from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { TOKEN_ID_PATTERN, Violations } from "../../lib/validation/violations.js";

export const MAX_TAG_LENGTH = 256;
export const MAX_WEIGHT_KG = 1000;
export const MAX_REASON_LENGTH = 1024;

function deliveryId(v: Violations, value: string): Violations {
  return v.id("delivery_id", value, { pattern: TOKEN_ID_PATTERN });
}

function checkPackages(v: Violations, packages: readonly PackageInfo[]): void {
  if (packages.length === 0) {
    v.add("packages", "must list at least one parcel");
    return;
  }
  const firstIndexOf = new Map<string, number>();
  packages.forEach((p, i) => {
    const at = `packages[${i}]`;
    const before = v.list.length;
    v.id(`${at}.package_id`, p.packageId);
    if (v.list.length === before) {
      const first = firstIndexOf.get(p.packageId);
      if (first === undefined) firstIndexOf.set(p.packageId, i);
      else v.add(`${at}.package_id`, `repeats packages[${first}].package_id`);
    }
    v.enumValue(`${at}.size`, p.size, PackageSizeSchema)
      .number(`${at}.weight_kg`, p.weightKg, { exclusiveMin: 0, max: MAX_WEIGHT_KG })
      .text(`${at}.tag`, p.tag, { max: MAX_TAG_LENGTH });
  });
}

/** Both ends present and valid, the end not before the start and not already past. */
function checkPickupWindow(v: Violations, window: TimeWindow | undefined, now: Date): void {
  if (!window) return;
  const before = v.list.length;
  v.timestamp("pickup_window.start_time", window.startTime, { required: true });
  v.timestamp("pickup_window.end_time", window.endTime, { required: true, future: true, now });
  if (v.list.length !== before || !window.startTime || !window.endTime) return;
  if (timestampMs(window.endTime) < timestampMs(window.startTime)) {
    v.add("pickup_window.end_time", "must not be before pickup_window.start_time");
  }
}

export function validateArrange(request: ArrangePickupRequest, now: Date): void {
  const v = deliveryId(new Violations(), request.deliveryId)
    .id("owner_id", request.ownerId)
    .location("pickup", request.pickup)
    .location("dropoff", request.dropoff);
  checkPackages(v, request.packages);
  checkPickupWindow(v, request.pickupWindow, now);
  v.timestamp("deadline", request.deadline, { future: true, now });
  v.throwIfAny();
}

export function validateCancel(request: CancelPickupRequest): void {
  deliveryId(new Violations(), request.deliveryId).text("reason", request.reason, { max: MAX_REASON_LENGTH }).throwIfAny();
}

export function validateGet(request: GetPickupRequest): void {
  deliveryId(new Violations(), request.deliveryId).throwIfAny();
}
