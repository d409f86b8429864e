/** Great-circle geometry on a spherical Earth: distances between points and points at a distance. */

export interface LatLon {
  readonly latitude: number;
  readonly longitude: number;
}

/** Mean Earth radius (IUGG), in kilometres. */
export const EARTH_RADIUS_KM = 6371.0088;

const toRadians = (degrees: number): number => (degrees * Math.PI) / 180;
const toDegrees = (radians: number): number => (radians * 180) / Math.PI;

/** The great-circle (haversine) distance between two points, in kilometres. */
export function distanceKm(from: LatLon, to: LatLon): number {
  const dLat = toRadians(to.latitude - from.latitude);
  const dLon = toRadians(to.longitude - from.longitude);
  const a =
    Math.sin(dLat / 2) ** 2 + Math.cos(toRadians(from.latitude)) * Math.cos(toRadians(to.latitude)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** The point reached from `start` after `km` kilometres on the initial bearing `bearingDegrees`. */
export function destination(start: LatLon, bearingDegrees: number, km: number): LatLon {
  const angular = km / EARTH_RADIUS_KM;
  const bearing = toRadians(bearingDegrees);
  const lat1 = toRadians(start.latitude);
  const lon1 = toRadians(start.longitude);
  const lat2 = Math.asin(Math.sin(lat1) * Math.cos(angular) + Math.cos(lat1) * Math.sin(angular) * Math.cos(bearing));
  const lon2 =
    lon1 + Math.atan2(Math.sin(bearing) * Math.sin(angular) * Math.cos(lat1), Math.cos(angular) - Math.sin(lat1) * Math.sin(lat2));
  const longitude = ((toDegrees(lon2) + 540) % 360) - 180;
  return { latitude: Math.max(-90, Math.min(90, toDegrees(lat2))), longitude };
}

/**
 * The point a fraction (0 to 1) of the way from `from` to `to` along the great circle between
 * them; `from` at 0, `to` at 1.
 */
export function pointBetween(from: LatLon, to: LatLon, fraction: number): LatLon {
  const f = Math.min(1, Math.max(0, fraction));
  if (f === 0) return { latitude: from.latitude, longitude: from.longitude };
  if (f === 1) return { latitude: to.latitude, longitude: to.longitude };
  const angular = distanceKm(from, to) / EARTH_RADIUS_KM;
  if (angular < 1e-12) return { latitude: from.latitude, longitude: from.longitude };
  const lat1 = toRadians(from.latitude);
  const lon1 = toRadians(from.longitude);
  const lat2 = toRadians(to.latitude);
  const lon2 = toRadians(to.longitude);
  const a = Math.sin((1 - f) * angular) / Math.sin(angular);
  const b = Math.sin(f * angular) / Math.sin(angular);
  const x = a * Math.cos(lat1) * Math.cos(lon1) + b * Math.cos(lat2) * Math.cos(lon2);
  const y = a * Math.cos(lat1) * Math.sin(lon1) + b * Math.cos(lat2) * Math.sin(lon2);
  const z = a * Math.sin(lat1) + b * Math.sin(lat2);
  return { latitude: toDegrees(Math.atan2(z, Math.sqrt(x * x + y * y))), longitude: toDegrees(Math.atan2(y, x)) };
}
