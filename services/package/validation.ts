/**
 * What a valid package looks like, and which fields an update may name. Field paths are the proto
 * field names under the request field that carries them (`package.weight_kg`, `update_mask`).
 */
import { PackageSizeSchema } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import type { Package } from "../../gen/dronedelivery/package/v1/package_pb.js";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { TOKEN_ID_PATTERN, Violations } from "../../lib/validation/violations.js";

export const MAX_WEIGHT_KG = 1000;
export const MAX_TAG_LENGTH = 256;

/** The fields an update may change, by their proto names. */
export const MUTABLE_PATHS = ["size", "weight_kg", "tag", "delivery_id"] as const;
export type MutablePath = (typeof MUTABLE_PATHS)[number];

/** Fields of a package that exist but never change after creation. */
export const IMMUTABLE_PATHS: readonly string[] = ["package_id", "owner_id", "create_time", "update_time"];

function isMutablePath(path: string): path is MutablePath {
  return (MUTABLE_PATHS as readonly string[]).includes(path);
}

/** The check of each changeable field, given the path prefix of the message that carries it. */
const FIELD_CHECKS: Record<MutablePath, (v: Violations, field: string, p: Package) => void> = {
  size: (v, field, p) => v.enumValue(field, p.size, PackageSizeSchema),
  weight_kg: (v, field, p) => v.number(field, p.weightKg, { exclusiveMin: 0, max: MAX_WEIGHT_KG }),
  tag: (v, field, p) => v.text(field, p.tag, { max: MAX_TAG_LENGTH }),
  // Delivery ids are single NATS subject tokens: no '.'.
  delivery_id: (v, field, p) => v.id(field, p.deliveryId, { pattern: TOKEN_ID_PATTERN, required: false }),
};

/** Copies each named field from `source` onto `target`. */
const FIELD_COPIES: Record<MutablePath, (target: Package, source: Package) => void> = {
  size: (t, s) => void (t.size = s.size),
  weight_kg: (t, s) => void (t.weightKg = s.weightKg),
  tag: (t, s) => void (t.tag = s.tag),
  delivery_id: (t, s) => void (t.deliveryId = s.deliveryId),
};

/** Collects the violations of a whole package (as sent to UpsertPackage) under `prefix`. */
export function checkPackage(v: Violations, prefix: string, p: Package): Violations {
  v.id(`${prefix}.package_id`, p.packageId).id(`${prefix}.owner_id`, p.ownerId);
  for (const path of MUTABLE_PATHS) FIELD_CHECKS[path](v, `${prefix}.${path}`, p);
  return v;
}

/**
 * The distinct changeable paths of `mask`, after adding a violation on `field` for a missing or
 * empty mask and for each unknown or immutable path; the values of the named fields of `source`
 * are checked under `prefix`.
 */
export function checkUpdateMask(
  v: Violations,
  field: string,
  mask: FieldMask | undefined,
  prefix: string,
  source: Package | undefined,
): MutablePath[] {
  if (!mask) {
    v.add(field, "is required");
    return [];
  }
  if (mask.paths.length === 0) {
    v.add(field, `must name at least one of ${MUTABLE_PATHS.join(", ")}`);
    return [];
  }
  const paths: MutablePath[] = [];
  for (const path of mask.paths) {
    if (isMutablePath(path)) {
      if (!paths.includes(path)) paths.push(path);
    } else if (IMMUTABLE_PATHS.includes(path)) {
      v.add(field, `path "${path}" names a field that cannot be changed`);
    } else {
      v.add(field, `unknown path "${path}": allowed are ${MUTABLE_PATHS.join(", ")}`);
    }
  }
  if (source) for (const path of paths) FIELD_CHECKS[path](v, `${prefix}.${path}`, source);
  return paths;
}

/** Sets the named fields of `target` to their values in `source`. */
export function copyFields(target: Package, source: Package, paths: readonly MutablePath[]): void {
  for (const path of paths) FIELD_COPIES[path](target, source);
}
