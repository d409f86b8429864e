/**
 * The fields of a package an update may change, by their proto names, and the copy of the named
 * ones. Which paths a mask may name, and what their new values may be, are rules of the contract
 * (UpdatePackageRequest), checked before the handler runs.
 */
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import type { Package } from "../../gen/dronedelivery/package/v1/package_pb.js";

export const MUTABLE_PATHS = ["size", "weight_kg", "tag", "delivery_id"] as const;
export type MutablePath = (typeof MUTABLE_PATHS)[number];

/** Copies each named field from `source` onto `target`. */
const FIELD_COPIES: Record<MutablePath, (target: Package, source: Package) => void> = {
  size: (t, s) => void (t.size = s.size),
  weight_kg: (t, s) => void (t.weightKg = s.weightKg),
  tag: (t, s) => void (t.tag = s.tag),
  delivery_id: (t, s) => void (t.deliveryId = s.deliveryId),
};

/** The distinct changeable paths a (checked) mask names. */
export function maskedPaths(mask: FieldMask | undefined): MutablePath[] {
  return MUTABLE_PATHS.filter((path) => mask?.paths.includes(path));
}

/** Sets the named fields of `target` to their values in `source`. */
export function copyFields(target: Package, source: Package, paths: readonly MutablePath[]): void {
  for (const path of paths) FIELD_COPIES[path](target, source);
}
