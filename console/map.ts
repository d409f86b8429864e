/**
 * The map: leaflet over an offline background, a coordinate grid (a line every 10°, 1°, 0.1°,
 * 0.01° ... picked for the zoom, each labelled with its latitude or longitude) redrawn as the view
 * moves. No tile server: nothing is fetched from outside the gateway.
 */
import * as L from "leaflet";

/** A grid step giving about 4 to 10 lines across `span` degrees. */
function gridStep(span: number): number {
  const steps = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001];
  return steps.find((s) => span / s >= 4) ?? 0.0001;
}

function decimalsOf(step: number): number {
  return Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
}

/** Draws the coordinate grid into `layer` for the map's current view. */
function drawGrid(map: L.Map, layer: L.LayerGroup): void {
  layer.clearLayers();
  const bounds = map.getBounds();
  const south = Math.max(bounds.getSouth(), -85);
  const north = Math.min(bounds.getNorth(), 85);
  const west = Math.max(bounds.getWest(), -180);
  const east = Math.min(bounds.getEast(), 180);
  const step = gridStep(Math.min(north - south, east - west));
  const decimals = decimalsOf(step);
  const line = { color: "#9fb3c8", weight: 1, opacity: 0.8, interactive: false };
  const labelAt = (lat: number, lng: number, text: string, anchor: [number, number]) =>
    L.marker([lat, lng], {
      interactive: false,
      keyboard: false,
      icon: L.divIcon({ className: "grid-label", html: text, iconSize: [60, 12], iconAnchor: anchor }),
    }).addTo(layer);
  // A label sits just inside the view's left (latitudes) or bottom (longitudes) edge.
  const inset = (north - south) * 0.01;
  for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
    L.polyline([[lat, west], [lat, east]], line).addTo(layer);
    labelAt(lat, west, `${lat.toFixed(decimals)}°`, [-4, 12]);
  }
  for (let lng = Math.ceil(west / step) * step; lng <= east; lng += step) {
    L.polyline([[south, lng], [north, lng]], line).addTo(layer);
    labelAt(south + inset, lng, `${lng.toFixed(decimals)}°`, [-3, 12]);
  }
}

/** The map in `element`, centred on `center`, with its grid. */
export function createMap(element: HTMLElement, center: L.LatLngExpression): L.Map {
  const map = L.map(element, { center, zoom: 13, zoomSnap: 0.5, preferCanvas: false, attributionControl: false });
  const grid = L.layerGroup().addTo(map);
  const redraw = () => drawGrid(map, grid);
  map.on("moveend zoomend resize", redraw);
  map.whenReady(redraw);
  L.control.scale({ imperial: false, position: "topright" }).addTo(map);
  return map;
}

/** A drone's marker: a round icon with class `drone-marker` and its id in `data-drone-id`. */
export function droneMarker(position: L.LatLngExpression, attributes: Record<string, string>, title: string): L.Marker {
  const marker = L.marker(position, {
    title,
    icon: L.divIcon({ className: "drone-marker", html: "✈", iconSize: [18, 18], iconAnchor: [9, 9] }),
    zIndexOffset: 1000,
  });
  marker.on("add", () => {
    const element = marker.getElement();
    if (element) for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  });
  return marker;
}
