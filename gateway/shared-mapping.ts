/**
 * Mapping helpers every public API version shares: enums matched by value name, locations to
 * the internal contract, and the fields a reschedule changes. Each version's own mapping module
 * (v1/mapping.ts, v2/mapping.ts) builds its messages from these.
 */
import type { DescEnum, DescEnumValue, MessageInitShape } from "@bufbuild/protobuf";
import type { LocationSchema } from "../gen/dronedelivery/common/v1/location_pb.js";

/** The fields of a location, in any version's message or the internal one. */
export interface LocationFields {
  readonly latitude: number;
  readonly longitude: number;
  readonly altitude: number;
}

/** A value's name without the prefix its enum shares, e.g. `SMALL` for `PARCEL_SIZE_SMALL`. */
function unprefixedName(value: DescEnumValue): string {
  const prefix = value.parent.sharedPrefix ?? "";
  return value.name.slice(prefix.length);
}

/**
 * The value of `to` named like `value` in `from`, ignoring each enum's own prefix, so that
 * `PACKAGE_SIZE_SMALL` maps to `PARCEL_SIZE_SMALL`. A number `from` does not know, or one `to`
 * has no match for, is passed through unchanged, so the receiving side rejects it as an unknown
 * value.
 */
export function enumByName(value: number, from: DescEnum, to: DescEnum): number {
  const known = from.value[value];
  if (known === undefined) return value;
  const name = unprefixedName(known);
  return to.values.find((v) => unprefixedName(v) === name)?.number ?? value;
}

export function locationToInternal(value: LocationFields | undefined): MessageInitShape<typeof LocationSchema> | undefined {
  return value && { latitude: value.latitude, longitude: value.longitude, altitude: value.altitude };
}

/** What a public reschedule asks to change. */
export interface RescheduleFields {
  readonly updateMask?: { readonly paths: readonly string[] } | undefined;
  readonly dropoff?: unknown;
  readonly pickupTime?: unknown;
  readonly deadline?: unknown;
}

/** The fields a public reschedule changes: the mask's, or every one present when it is empty. */
export function reschedulePaths(request: RescheduleFields): string[] {
  const given = request.updateMask?.paths ?? [];
  if (given.length > 0) return [...given];
  const present: string[] = [];
  if (request.dropoff) present.push("dropoff");
  if (request.pickupTime) present.push("pickup_time");
  if (request.deadline) present.push("deadline");
  return present;
}
