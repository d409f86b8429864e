/** Road-trip estimates between two WGS 84 points. */

/** A point's coordinates, in degrees. */
interface LocationLike {
  readonly latitude: number;
  readonly longitude: number;
}

/** Mean Earth radius (IUGG), in kilometres. */
export const EARTH_RADIUS_KM = 6371.0088;

/** Great-circle (haversine) distance between two points, in kilometres; altitude is ignored. */
export function greatCircleKm(from: LocationLike, to: LocationLike): number {
  const rad = (deg: number) => (deg * Math.PI) / 180;
  const dLat = rad(to.latitude - from.latitude);
  const dLon = rad(to.longitude - from.longitude);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(from.latitude)) * Math.cos(rad(to.latitude)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Milliseconds to drive `distanceKm` at `speedKmh`. */
export function travelMs(distanceKm: number, speedKmh: number): number {
  return (distanceKm / speedKmh) * 3_600_000;
}
