/** Per-owner totals, computed from the stored packages themselves. */
import type { Package } from "../../gen/dronedelivery/package/v1/package_pb.js";

export interface PackageTotals {
  readonly packageCount: number;
  readonly totalWeightKg: number;
}

/**
 * Counts the packages and adds up their weights. The weights are added in package-id order, so
 * the same packages always give the same total to the last bit, whatever order they were read in.
 */
export function totalsOf(packages: readonly Package[]): PackageTotals {
  const sorted = [...packages].sort((a, b) => (a.packageId < b.packageId ? -1 : a.packageId > b.packageId ? 1 : 0));
  let totalWeightKg = 0;
  for (const p of sorted) totalWeightKg += p.weightKg;
  return { packageCount: sorted.length, totalWeightKg };
}
