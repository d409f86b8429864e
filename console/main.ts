/**
 * The web console: sign-in from the URL's `#token=...`, the map, the signed-in account's
 * deliveries (table, detail, actions, schedule form) and, for an operator token, the fleet.
 * Every datum comes from the gateway's public REST + SSE API (api.ts).
 *
 * Live data: the deliveries list and each open delivery's status are polled every 3 s (one
 * stream per delivery would soon use up the browser's 6 connections to the gateway); the
 * delivery in the detail view is followed through its event stream (GET
 * /v1/deliveries/{id}/events?includePositions=true), and an operator's fleet through
 * GET /v1/fleet/events, so positions move as the drones report them.
 */
import "leaflet/dist/leaflet.css";
import "./style.css";
import * as L from "leaflet";
import { api, ApiError, forgetToken, keepFollowing, onReconnect, onUnauthorized, OfflineError, readClaims, storeToken, takeToken, useToken } from "./api.js";
import { createMap, droneMarker } from "./map.js";

// ---- shapes of the public API's JSON (protobuf JSON: lowerCamelCase, enums by name) ----
interface Location { latitude?: number; longitude?: number; altitude?: number }
interface Delivery {
  deliveryId: string;
  pickup?: Location;
  dropoff?: Location;
  deadline?: string;
  confirmationRequired?: string;
  packageInfo?: { packageId?: string; size?: string; weightKg?: number };
  carrier?: string;
  stage?: string;
  endReason?: string;
  failureCode?: string;
  confirmTime?: string;
  createTime?: string;
  updateTime?: string;
}
interface DeliveryStatus {
  deliveryId?: string;
  stage?: string;
  lastKnownLocation?: Location;
  pickupEta?: string;
  deliveryEta?: string;
  updateTime?: string;
  endReason?: string;
}
interface DeliveryEvent { deliveryId?: string; stage?: string; location?: Location; deliveryEta?: string; reason?: string; eventTime?: string; failureCode?: string }
interface WatchUpdate { sequence?: string; event?: DeliveryEvent; position?: Location }
/** dronedelivery.api.v1.Drone (fleet_api_service.proto). */
interface FleetDrone {
  droneId: string;
  status?: string;
  stage?: string;
  position?: Location;
  homeBase?: Location;
  maxPayloadKg?: number;
  speedMps?: number;
  batteryPercent?: number;
  deliveryId?: string;
  updateTime?: string;
}
/** dronedelivery.api.v1.WatchFleetResponse: one drone's location event. */
interface FleetEvent { droneId?: string; deliveryId?: string; position?: Location; stage?: string; batteryPercent?: number; speedMps?: number; eventTime?: string }
interface FleetSummary {
  dronesTotal?: number;
  dronesBusy?: number;
  dronesOutOfService?: number;
  utilization?: number;
  deliveriesTotal?: number;
  deliveriesByStage?: Record<string, number>;
  recentFailures?: Array<{ deliveryId?: string; ownerId?: string; failureCode?: string; reason?: string; updateTime?: string }>;
}

const ENDED = new Set(["COMPLETED", "CANCELLED", "FAILED"]);
const POLL_MS = 3000;
const FLEET_POLL_MS = 5000;
/** The fleet's default home base (services/drone/config.ts), where the map starts. */
const DEFAULT_CENTER: L.LatLngTuple = [47.6062, -122.3321];

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** A stage name without its enum prefix: DELIVERY_STAGE_COMPLETED -> COMPLETED. */
function stageName(stage: string | undefined): string {
  return (stage ?? "UNSPECIFIED").replace(/^(DELIVERY_STAGE_|FLIGHT_STAGE_|DRONE_STAGE_|DRONE_STATUS_)/, "");
}

function shortName(value: string | undefined, prefix: RegExp): string {
  return (value ?? "").replace(prefix, "");
}

function time(value: string | undefined): string {
  if (!value) return "–";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleTimeString();
}

function dateTime(value: string | undefined): string {
  if (!value) return "–";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

function hasPoint(location: Location | undefined): location is Required<Pick<Location, "latitude" | "longitude">> & Location {
  return !!location && typeof location.latitude === "number" && typeof location.longitude === "number";
}

/** "lat, lng" with 5 decimals (the fleet table's and detail view's position text). */
function positionText(location: Location | undefined): string {
  if (!location) return "–";
  return `${(location.latitude ?? 0).toFixed(5)}, ${(location.longitude ?? 0).toFixed(5)}`;
}

function latLng(location: Location): L.LatLngTuple {
  return [location.latitude ?? 0, location.longitude ?? 0];
}

function message(element: HTMLElement, text: string, isError = false): void {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

function describe(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.code})`;
  if (error instanceof OfflineError) return "the gateway cannot be reached; try again when it is back";
  return String(error);
}

function cell(row: HTMLTableRowElement, text: string, testId?: string): HTMLTableCellElement {
  const td = row.insertCell();
  td.textContent = text;
  if (testId) td.dataset["testid"] = testId;
  return td;
}

// ---- sign-in ----
function showSignedOut(reason?: string): void {
  $("app").hidden = true;
  $("tabs").hidden = true;
  $("who").replaceChildren();
  $("signed-out").hidden = false;
  if (reason) $("signed-out-reason").textContent = reason;
}

function start(): void {
  const token = takeToken();
  $<HTMLFormElement>("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken($<HTMLInputElement>("token-input").value);
    location.reload();
  });
  if (!token) {
    showSignedOut();
    return;
  }
  const claims = readClaims(token);
  if (!claims) {
    forgetToken();
    showSignedOut("That token is not a JWT. Open the console URL that make run prints, or paste a token below.");
    return;
  }
  useToken(token);
  onUnauthorized((error) => {
    forgetToken();
    stopAll();
    showSignedOut(`The gateway refused the token (${error.message}). Open a fresh console URL from make run, or paste a token below.`);
  });
  const operator = claims.roles.includes("operator");
  const who = $("who");
  const name = document.createElement("span");
  name.textContent = `${claims.sub}${operator ? " · operator" : ""}`;
  const signOut = document.createElement("button");
  signOut.type = "button";
  signOut.id = "sign-out";
  signOut.dataset["testid"] = "sign-out";
  signOut.textContent = "Sign out";
  signOut.addEventListener("click", () => {
    forgetToken();
    stopAll();
    showSignedOut("Signed out. Open a console URL with a token, or paste one below.");
  });
  who.replaceChildren(name, signOut);
  $("app").hidden = false;
  $("tabs").hidden = false;
  $("operator-tab").hidden = !operator;
  const app = new Console(operator);
  stopAll = () => app.stop();
  app.start();
}

let stopAll: () => void = () => {};

// ---- the console ----
class Console {
  private readonly map: L.Map;
  private readonly deliveries = new Map<string, Delivery>();
  private readonly statuses = new Map<string, DeliveryStatus>();
  private readonly overlays = new Map<string, L.LayerGroup>();
  private readonly positions = new Map<string, L.Marker>();
  private readonly drones = new Map<string, FleetDrone>();
  private readonly droneMarkers = new Map<string, L.Marker>();
  private readonly fleetLayer = L.layerGroup();
  /** Every account's in-flight deliveries (operators): pickup, drop-off, route. */
  private readonly fleetRoutes = L.layerGroup();
  private readonly picks = L.layerGroup();
  private selected: string | undefined;
  private detailStream: AbortController | undefined;
  private fleetStream: AbortController | undefined;
  private timers: number[] = [];
  private fitted = false;
  private stopped = false;
  /** What a click on the map sets: a schedule form field, or a reschedule's new drop-off. */
  private picking: "pickup" | "dropoff" | "reschedule" = "pickup";

  constructor(private readonly operator: boolean) {
    this.map = createMap($("map"), DEFAULT_CENTER);
    this.picks.addTo(this.map);
  }

  start(): void {
    this.wireForm();
    this.wireDetail();
    this.wireTabs();
    onReconnect(() => {
      if (this.stopped) return;
      void this.refresh();
      if (this.operator && !$("operator-view").hidden) void this.refreshFleet();
    });
    void this.refresh();
    this.timers.push(window.setInterval(() => void this.refresh(), POLL_MS));
    if (this.operator) {
      this.fleetRoutes.addTo(this.map);
      this.fleetLayer.addTo(this.map);
      void this.refreshFleet();
      this.timers.push(window.setInterval(() => void this.refreshFleet(), FLEET_POLL_MS));
      this.followFleet();
    }
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.detailStream?.abort();
    this.fleetStream?.abort();
  }

  // ---- deliveries ----
  private refreshing = false;

  /** Reloads the list (two pages of 100 at most) and the status of every open delivery. */
  async refresh(): Promise<void> {
    if (this.refreshing || this.stopped) return;
    this.refreshing = true;
    try {
      const list: Delivery[] = [];
      let pageToken = "";
      for (let page = 0; page < 2; page++) {
        const answer = await api<{ deliveries?: Delivery[]; nextPageToken?: string }>(
          "GET",
          `/v1/deliveries?pageSize=100${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ""}`,
        );
        list.push(...(answer.deliveries ?? []));
        pageToken = answer.nextPageToken ?? "";
        if (!pageToken) break;
      }
      for (const delivery of list) this.deliveries.set(delivery.deliveryId, delivery);
      const open = list.filter((d) => !ENDED.has(stageName(d.stage))).slice(0, 20);
      await Promise.all(
        open.map(async (d) => {
          try {
            this.statuses.set(d.deliveryId, await api<DeliveryStatus>("GET", `/v1/deliveries/${encodeURIComponent(d.deliveryId)}/status`));
          } catch (error) {
            if (error instanceof OfflineError) throw error;
          }
        }),
      );
      $("list-note").textContent = `${list.length} · updated ${new Date().toLocaleTimeString()}`;
      this.renderTable();
      this.renderDeliveriesOnMap();
      if (this.selected) this.renderDetail();
    } catch {
      // The banner shows an unreachable gateway; the next poll tries again.
    } finally {
      this.refreshing = false;
    }
  }

  private currentStage(id: string): string {
    const delivery = this.deliveries.get(id);
    const status = this.statuses.get(id);
    // The later of the two readings wins.
    if (status?.stage && (!delivery?.updateTime || (status.updateTime ?? "") >= delivery.updateTime)) return stageName(status.stage);
    return stageName(delivery?.stage);
  }

  private renderTable(): void {
    const body = $<HTMLTableElement>("deliveries-table").tBodies[0]!;
    const ordered = [...this.deliveries.values()].sort((a, b) => (b.createTime ?? "").localeCompare(a.createTime ?? ""));
    const rows: HTMLTableRowElement[] = [];
    for (const delivery of ordered) {
      const id = delivery.deliveryId;
      const status = this.statuses.get(id);
      const stage = this.currentStage(id);
      const row = document.createElement("tr");
      row.dataset["testid"] = `delivery-row-${id}`;
      row.dataset["deliveryId"] = id;
      if (id === this.selected) row.classList.add("selected");
      cell(row, id);
      const stageCell = cell(row, stage, "delivery-stage");
      stageCell.className = `stage stage-${stage}`;
      cell(row, ENDED.has(stage) ? "–" : time(status?.deliveryEta), "delivery-eta");
      cell(row, dateTime(status?.updateTime && status.updateTime > (delivery.updateTime ?? "") ? status.updateTime : delivery.updateTime), "delivery-updated");
      row.addEventListener("click", () => this.select(id));
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }

  /** Pickup, drop-off, route and last position of every open delivery. */
  private renderDeliveriesOnMap(): void {
    const points: L.LatLngTuple[] = [];
    for (const [id, delivery] of this.deliveries) {
      const stage = this.currentStage(id);
      const open = !ENDED.has(stage);
      let overlay = this.overlays.get(id);
      if (!open && id !== this.selected) {
        if (overlay) {
          overlay.remove();
          this.overlays.delete(id);
        }
        this.positions.get(id)?.remove();
        this.positions.delete(id);
        continue;
      }
      if (!hasPoint(delivery.pickup) || !hasPoint(delivery.dropoff)) continue;
      const status = this.statuses.get(id);
      const here = status?.lastKnownLocation;
      const route: L.LatLngTuple[] = [];
      if (hasPoint(here) && (stage === "HEADED_TO_PICKUP" || stage === "CREATED" || stage === "RESCHEDULED")) route.push(latLng(here));
      route.push(latLng(delivery.pickup), latLng(delivery.dropoff));
      overlay?.remove();
      overlay = L.layerGroup([
        L.polyline(route, { color: id === this.selected ? "#2458a6" : "#5a7fa8", weight: id === this.selected ? 4 : 2, dashArray: "6 4" }),
        L.circleMarker(latLng(delivery.pickup), { radius: 6, color: "#1c7c35", fillOpacity: 0.8 }).bindTooltip(`${id}: pickup`),
        L.circleMarker(latLng(delivery.dropoff), { radius: 6, color: "#a32020", fillOpacity: 0.8 }).bindTooltip(`${id}: drop-off`),
      ]).addTo(this.map);
      overlay.eachLayer((layer) => layer.on("click", () => this.select(id)));
      this.overlays.set(id, overlay);
      points.push(latLng(delivery.pickup), latLng(delivery.dropoff));
      if (hasPoint(here) && open) this.movePosition(id, here);
    }
    for (const drone of this.drones.values()) if (hasPoint(drone.position)) points.push(latLng(drone.position));
    if (!this.fitted && points.length > 0) {
      this.fitted = true;
      this.map.fitBounds(L.latLngBounds(points).pad(0.2), { maxZoom: 15 });
    }
  }

  /** The marker of a delivery's drone (as the customer sees it: by delivery, the drone unnamed). */
  private movePosition(id: string, location: Location): void {
    if (this.operator) return; // operators see every drone as itself (the fleet layer)
    const marker = this.positions.get(id);
    if (marker) marker.setLatLng(latLng(location));
    else this.positions.set(id, droneMarker(latLng(location), { "data-delivery-id": id }, `drone carrying ${id}`).addTo(this.map));
  }

  // ---- detail ----
  private select(id: string): void {
    if (this.selected === id) return;
    this.selected = id;
    this.detailStream?.abort();
    $("delivery-detail").hidden = false;
    $("detail-id").textContent = id;
    $("detail-timeline").replaceChildren();
    $("detail-position").textContent = "–";
    message($("detail-message"), "");
    this.renderTable();
    this.renderDetail();
    this.renderDeliveriesOnMap();
    void this.loadHistory(id);
    const stream = new AbortController();
    this.detailStream = stream;
    keepFollowing(
      () => `/v1/deliveries/${encodeURIComponent(id)}/events?includePositions=true`,
      (data) => this.onDeliveryUpdate(id, data as WatchUpdate),
      stream.signal,
      (error) => {
        if (error instanceof ApiError) message($("detail-message"), `Live updates: ${describe(error)}`, true);
      },
      () => ENDED.has(this.currentStage(id)),
    );
  }

  private closeDetail(): void {
    this.selected = undefined;
    this.detailStream?.abort();
    $("delivery-detail").hidden = true;
    this.renderTable();
    this.renderDeliveriesOnMap();
  }

  private async loadHistory(id: string): Promise<void> {
    try {
      const history = await api<{ events?: DeliveryEvent[] }>("GET", `/v1/deliveries/${encodeURIComponent(id)}/history`);
      if (this.selected !== id) return;
      $("detail-timeline").replaceChildren(...(history.events ?? []).map((e) => this.timelineItem(e)));
    } catch (error) {
      if (this.selected === id) message($("detail-message"), `History: ${describe(error)}`, true);
    }
  }

  private timelineItem(event: DeliveryEvent): HTMLLIElement {
    const item = document.createElement("li");
    const reason = event.reason ? ` — ${event.reason}` : "";
    const failure = event.failureCode ? ` (${shortName(event.failureCode, /^FAILURE_CODE_/)})` : "";
    item.textContent = `${dateTime(event.eventTime)}: ${stageName(event.stage)}${failure}${reason}`;
    return item;
  }

  private onDeliveryUpdate(id: string, update: WatchUpdate): void {
    if (this.selected !== id) return;
    if (update.position) {
      $("detail-position").textContent = positionText(update.position);
      const status = this.statuses.get(id) ?? {};
      this.statuses.set(id, { ...status, lastKnownLocation: update.position });
      if (hasPoint(update.position)) this.movePosition(id, update.position);
    }
    if (update.event) {
      const event = update.event;
      const timeline = $("detail-timeline");
      const item = this.timelineItem(event);
      // The stream starts with the events so far: the history list may hold them already.
      if (![...timeline.children].some((li) => li.textContent === item.textContent)) timeline.append(item);
      const status = this.statuses.get(id) ?? {};
      this.statuses.set(id, {
        ...status,
        stage: event.stage ?? status.stage,
        updateTime: event.eventTime ?? status.updateTime,
        ...(event.deliveryEta ? { deliveryEta: event.deliveryEta } : {}),
        ...(event.reason ? { endReason: event.reason } : {}),
        ...(event.location ? { lastKnownLocation: event.location } : {}),
      });
      this.renderTable();
      this.renderDetail();
      this.renderDeliveriesOnMap();
    }
  }

  private renderDetail(): void {
    const id = this.selected;
    if (!id) return;
    const delivery = this.deliveries.get(id);
    const status = this.statuses.get(id);
    const stage = this.currentStage(id);
    const stageElement = $("detail-stage");
    stageElement.textContent = stage;
    stageElement.className = `stage stage-${stage}`;
    const reason = status?.endReason || delivery?.endReason;
    $("detail-reason").textContent = reason ? `— ${reason}` : "";
    if (status?.lastKnownLocation && $("detail-position").textContent === "–") $("detail-position").textContent = positionText(status.lastKnownLocation);
    $("detail-eta").textContent = ENDED.has(stage) ? "–" : time(status?.deliveryEta);
    const info = delivery
      ? [
          `pickup ${positionText(delivery.pickup)}`,
          `drop-off ${positionText(delivery.dropoff)}`,
          `parcel ${delivery.packageInfo?.packageId ?? "?"} (${shortName(delivery.packageInfo?.size, /^PACKAGE_SIZE_/).toLowerCase()}, ${delivery.packageInfo?.weightKg ?? "?"} kg)`,
          `carrier ${delivery.carrier || "–"}`,
          `deadline ${dateTime(delivery.deadline)}`,
          `confirmation ${shortName(delivery.confirmationRequired, /^CONFIRMATION_TYPE_/) || "NONE"}${delivery.confirmTime ? `, confirmed ${dateTime(delivery.confirmTime)}` : ""}`,
        ].join(" · ")
      : "";
    $("detail-info").textContent = info;
    const ended = ENDED.has(stage);
    $<HTMLButtonElement>("cancel-button").disabled = ended;
    $<HTMLButtonElement>("reschedule-button").disabled = ended;
    $<HTMLButtonElement>("confirm-button").disabled = stage !== "COMPLETED" && stage !== "HEADED_TO_DROPOFF";
  }

  private wireDetail(): void {
    $("detail-close").addEventListener("click", () => this.closeDetail());
    $("cancel-button").addEventListener("click", () => void this.act("cancel"));
    $("confirm-button").addEventListener("click", () => void this.act("confirm"));
    $("reschedule-button").addEventListener("click", () => {
      this.picking = "reschedule";
      $("map").classList.add("map-picking");
      message($("detail-message"), "Click the map at the new drop-off.");
    });
  }

  private async act(action: "cancel" | "confirm" | "reschedule", dropoff?: L.LatLng): Promise<void> {
    const id = this.selected;
    if (!id) return;
    const path = encodeURIComponent(id);
    const out = $("detail-message");
    try {
      if (action === "cancel") {
        await api("DELETE", `/v1/deliveryrequests/${path}?reason=${encodeURIComponent("cancelled in the web console")}`);
        message(out, "Cancellation accepted.");
      } else if (action === "confirm") {
        // The confirmation must be of the type the delivery requires.
        const type = this.deliveries.get(id)?.confirmationRequired || "CONFIRMATION_TYPE_NONE";
        let proof = "";
        if (type !== "CONFIRMATION_TYPE_NONE" && type !== "CONFIRMATION_TYPE_UNSPECIFIED") {
          proof = window.prompt(`This delivery requires a ${shortName(type, /^CONFIRMATION_TYPE_/).toLowerCase()}: its reference`) ?? "";
          if (!proof) return;
        }
        const answer = await api<{ delivery?: Delivery }>("POST", `/v1/deliveries/${path}/confirmations`, {
          confirmationType: type,
          ...(proof ? { proofReference: proof } : {}),
        });
        if (answer.delivery) this.deliveries.set(id, answer.delivery);
        message(out, "Receipt confirmed.");
      } else if (dropoff) {
        await api("PATCH", `/v1/deliveryrequests/${path}`, {
          dropoff: { latitude: round(dropoff.lat), longitude: round(dropoff.lng) },
          updateMask: "dropoff",
        });
        message(out, `New drop-off ${round(dropoff.lat)}, ${round(dropoff.lng)} accepted.`);
      }
      await this.refresh();
      void this.loadHistory(id);
    } catch (error) {
      message(out, describe(error), true);
    }
  }

  // ---- schedule form ----
  private wireForm(): void {
    const form = $<HTMLFormElement>("schedule-form");
    const deadline = $<HTMLInputElement>("deadline");
    deadline.value = localInputValue(new Date(Date.now() + 6 * 3600_000));
    for (const radio of form.querySelectorAll<HTMLInputElement>("input[name=pick]")) {
      radio.addEventListener("change", () => {
        if (radio.checked) this.picking = radio.value as "pickup" | "dropoff";
      });
    }
    this.map.on("click", (event: L.LeafletMouseEvent) => this.onMapClick(event.latlng));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.schedule();
    });
  }

  private setPick(kind: "pickup" | "dropoff", lat: number, lng: number): void {
    $<HTMLInputElement>(`${kind}-lat`).value = String(round(lat));
    $<HTMLInputElement>(`${kind}-lng`).value = String(round(lng));
    this.drawPicks();
  }

  private drawPicks(): void {
    this.picks.clearLayers();
    for (const [kind, color] of [["pickup", "#1c7c35"], ["dropoff", "#a32020"]] as const) {
      const lat = Number($<HTMLInputElement>(`${kind}-lat`).value);
      const lng = Number($<HTMLInputElement>(`${kind}-lng`).value);
      if ($<HTMLInputElement>(`${kind}-lat`).value && $<HTMLInputElement>(`${kind}-lng`).value && Number.isFinite(lat) && Number.isFinite(lng)) {
        L.circleMarker([lat, lng], { radius: 8, color, dashArray: "3 3", fillOpacity: 0.2 }).bindTooltip(`new ${kind}`).addTo(this.picks);
      }
    }
  }

  private onMapClick(at: L.LatLng): void {
    if (this.picking === "reschedule") {
      this.picking = "pickup";
      $("map").classList.remove("map-picking");
      const radio = document.querySelector<HTMLInputElement>("input[name=pick]:checked");
      if (radio) this.picking = radio.value as "pickup" | "dropoff";
      void this.act("reschedule", at);
      return;
    }
    this.setPick(this.picking, at.lat, at.lng);
    // Pickup first, then the drop-off, then the pickup again.
    const next = this.picking === "pickup" ? "dropoff" : "pickup";
    this.picking = next;
    const radio = document.querySelector<HTMLInputElement>(`input[name=pick][value=${next}]`);
    if (radio) radio.checked = true;
  }

  private async schedule(): Promise<void> {
    const out = $("schedule-message");
    const number = (id: string) => Number($<HTMLInputElement>(id).value);
    const deadlineText = $<HTMLInputElement>("deadline").value;
    const deadline = deadlineText ? new Date(deadlineText) : new Date(Date.now() + 6 * 3600_000);
    const body = {
      pickup: { latitude: number("pickup-lat"), longitude: number("pickup-lng") },
      dropoff: { latitude: number("dropoff-lat"), longitude: number("dropoff-lng") },
      deadline: deadline.toISOString(),
      confirmationRequired: "CONFIRMATION_TYPE_NONE",
      packageInfo: {
        packageId: `pkg-${crypto.randomUUID().slice(0, 8)}`,
        size: $<HTMLSelectElement>("package-size").value,
        weightKg: number("package-weight"),
      },
    };
    const submit = $<HTMLButtonElement>("schedule-submit");
    submit.disabled = true;
    try {
      const answer = await api<{ deliveryId?: string }>("POST", "/v1/deliveryrequests", body);
      message(out, `Accepted: delivery ${answer.deliveryId ?? "?"}.`);
      this.picks.clearLayers();
      for (const id of ["pickup-lat", "pickup-lng", "dropoff-lat", "dropoff-lng"]) $<HTMLInputElement>(id).value = "";
      await this.refresh();
      if (answer.deliveryId) this.select(answer.deliveryId);
    } catch (error) {
      message(out, describe(error), true);
    } finally {
      submit.disabled = false;
    }
  }

  // ---- operator ----
  private wireTabs(): void {
    const show = (operatorView: boolean) => {
      $("customer-view").hidden = operatorView;
      $("operator-view").hidden = !operatorView;
      $("deliveries-tab").classList.toggle("active", !operatorView);
      $("operator-tab").classList.toggle("active", operatorView);
      if (operatorView) void this.refreshFleet();
    };
    $("deliveries-tab").addEventListener("click", () => show(false));
    $("operator-tab").addEventListener("click", () => {
      if (this.operator) show(true);
    });
  }

  private fleetRefreshing = false;

  async refreshFleet(): Promise<void> {
    if (!this.operator || this.fleetRefreshing || this.stopped) return;
    this.fleetRefreshing = true;
    const out = $("operator-message");
    try {
      const [drones, summary, inFlight] = await Promise.all([
        this.listDrones(),
        api<FleetSummary>("GET", "/v1/fleet/summary"),
        this.listInFlight(),
      ]);
      const seen = new Set<string>();
      for (const drone of drones) {
        seen.add(drone.droneId);
        this.drones.set(drone.droneId, { ...this.drones.get(drone.droneId), ...drone });
        this.renderDrone(drone.droneId);
      }
      for (const id of [...this.drones.keys()]) {
        if (!seen.has(id)) {
          this.drones.delete(id);
          this.droneMarkers.get(id)?.remove();
          this.droneMarkers.delete(id);
        }
      }
      this.renderFleetTable();
      this.renderSummary(summary);
      this.renderFleetRoutes(inFlight);
      message(out, "");
      if (!this.fitted) this.renderDeliveriesOnMap();
    } catch (error) {
      if (!(error instanceof OfflineError)) message(out, `Fleet: ${describe(error)}`, true);
    } finally {
      this.fleetRefreshing = false;
    }
  }

  /** Every account's deliveries on their way (the first 100 of each open stage). */
  private async listInFlight(): Promise<Array<{ ownerId?: string; delivery?: Delivery }>> {
    const stages = ["CREATED", "RESCHEDULED", "HEADED_TO_PICKUP", "HEADED_TO_DROPOFF"];
    const pages = await Promise.all(
      stages.map((stage) =>
        api<{ deliveries?: Array<{ ownerId?: string; delivery?: Delivery }> }>("GET", `/v1/fleet/deliveries?stage=DELIVERY_STAGE_${stage}&pageSize=100`),
      ),
    );
    return pages.flatMap((page) => page.deliveries ?? []);
  }

  private renderFleetRoutes(inFlight: Array<{ ownerId?: string; delivery?: Delivery }>): void {
    this.fleetRoutes.clearLayers();
    const carrying = new Map([...this.drones.values()].filter((d) => d.deliveryId).map((d) => [d.deliveryId!, d]));
    for (const { ownerId, delivery } of inFlight) {
      if (!delivery || !hasPoint(delivery.pickup) || !hasPoint(delivery.dropoff)) continue;
      const drone = carrying.get(delivery.deliveryId);
      const route: L.LatLngTuple[] = [];
      if (hasPoint(drone?.position) && stageName(delivery.stage) !== "HEADED_TO_DROPOFF") route.push(latLng(drone.position));
      route.push(latLng(delivery.pickup), latLng(delivery.dropoff));
      const label = `${delivery.deliveryId} (${ownerId ?? "?"}, ${stageName(delivery.stage)}${drone ? `, ${drone.droneId}` : ""})`;
      L.polyline(route, { color: "#7a5aa8", weight: 2, dashArray: "4 4", interactive: false }).addTo(this.fleetRoutes);
      L.circleMarker(latLng(delivery.pickup), { radius: 4, color: "#1c7c35", fillOpacity: 0.7 }).bindTooltip(`${label}: pickup`).addTo(this.fleetRoutes);
      L.circleMarker(latLng(delivery.dropoff), { radius: 4, color: "#a32020", fillOpacity: 0.7 }).bindTooltip(`${label}: drop-off`).addTo(this.fleetRoutes);
    }
  }

  /** Every drone (pages of 500, ten at most). */
  private async listDrones(): Promise<FleetDrone[]> {
    const drones: FleetDrone[] = [];
    let pageToken = "";
    for (let page = 0; page < 10; page++) {
      const answer = await api<{ drones?: FleetDrone[]; nextPageToken?: string }>(
        "GET",
        `/v1/fleet/drones?pageSize=500${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ""}`,
      );
      drones.push(...(answer.drones ?? []));
      pageToken = answer.nextPageToken ?? "";
      if (!pageToken) break;
    }
    return drones;
  }

  private followFleet(): void {
    const stream = new AbortController();
    this.fleetStream = stream;
    keepFollowing(
      () => "/v1/fleet/events",
      (data) => {
        const event = data as FleetEvent;
        if (!event.droneId) return;
        const known = this.drones.get(event.droneId);
        this.drones.set(event.droneId, {
          ...known,
          droneId: event.droneId,
          ...(event.stage ? { stage: event.stage } : {}),
          ...(event.position ? { position: event.position } : {}),
          ...(typeof event.batteryPercent === "number" ? { batteryPercent: event.batteryPercent } : {}),
          ...(event.eventTime ? { updateTime: event.eventTime } : {}),
          deliveryId: event.deliveryId ?? "",
        });
        this.renderDrone(event.droneId);
        if (!known) this.renderFleetTable();
      },
      stream.signal,
      (error) => {
        if (error instanceof ApiError) message($("operator-message"), `Fleet events: ${describe(error)}`, true);
      },
    );
  }

  /** A drone's marker and, when its row exists, its row's stage and position. */
  private renderDrone(id: string): void {
    const drone = this.drones.get(id);
    if (!drone) return;
    if (hasPoint(drone.position)) {
      const marker = this.droneMarkers.get(id);
      if (marker) marker.setLatLng(latLng(drone.position));
      else this.droneMarkers.set(id, droneMarker(latLng(drone.position), { "data-drone-id": id }, id).addTo(this.fleetLayer));
      const element = this.droneMarkers.get(id)?.getElement();
      element?.classList.toggle("busy", !!drone.deliveryId);
      if (drone.deliveryId) element?.setAttribute("data-delivery-id", drone.deliveryId);
      else element?.removeAttribute("data-delivery-id");
    }
    const row = document.querySelector<HTMLTableRowElement>(`[data-testid="drone-row-${CSS.escape(id)}"]`);
    if (row) {
      row.querySelector('[data-testid="drone-stage"]')!.textContent = stageName(drone.stage);
      row.querySelector('[data-testid="drone-position"]')!.textContent = positionText(drone.position);
      row.querySelector('[data-testid="drone-delivery"]')!.textContent = drone.deliveryId || "–";
      row.querySelector('[data-testid="drone-details"]')!.textContent = this.droneDetails(drone);
    }
  }

  private renderFleetTable(): void {
    const body = $<HTMLTableElement>("fleet-table").tBodies[0]!;
    const rows = [...this.drones.values()]
      .sort((a, b) => a.droneId.localeCompare(b.droneId))
      .map((drone) => {
        const row = document.createElement("tr");
        row.dataset["testid"] = `drone-row-${drone.droneId}`;
        cell(row, drone.droneId);
        cell(row, stageName(drone.stage), "drone-stage").className = "stage";
        cell(row, positionText(drone.position), "drone-position");
        cell(row, drone.deliveryId || "–", "drone-delivery");
        cell(row, this.droneDetails(drone), "drone-details");
        row.addEventListener("click", () => {
          if (hasPoint(drone.position)) this.map.panTo(latLng(drone.position));
        });
        return row;
      });
    body.replaceChildren(...rows);
  }

  private droneDetails(drone: FleetDrone): string {
    return [
      drone.status ? shortName(drone.status, /^DRONE_STATUS_/) : "",
      typeof drone.batteryPercent === "number" ? `battery ${Math.round(drone.batteryPercent)}%` : "",
      typeof drone.maxPayloadKg === "number" ? `payload ≤ ${drone.maxPayloadKg} kg` : "",
      hasPoint(drone.homeBase) ? `home ${positionText(drone.homeBase)}` : "",
    ]
      .filter(Boolean)
      .join(" · ");
  }

  private renderSummary(summary: FleetSummary): void {
    // Protobuf JSON leaves zeros out: an idle fleet's utilization is absent.
    const utilization = `${Math.round((summary.utilization ?? 0) * 100)}%`;
    const outOfService = summary.dronesOutOfService ? `, ${summary.dronesOutOfService} out of service` : "";
    $("fleet-utilization").textContent = `${utilization} (${summary.dronesBusy ?? 0} of ${summary.dronesTotal ?? 0} drones busy${outOfService})`;
    const byStage = Object.entries(summary.deliveriesByStage ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([stage, count]) => {
        const item = document.createElement("li");
        item.dataset["stage"] = stageName(stage);
        item.textContent = `${stageName(stage)}: ${count}`;
        return item;
      });
    $("deliveries-by-stage").replaceChildren(...byStage);
    const failures = (summary.recentFailures ?? []).map((failure) => {
      const item = document.createElement("li");
      item.dataset["deliveryId"] = failure.deliveryId ?? "";
      item.textContent = `${dateTime(failure.updateTime)} ${failure.deliveryId ?? "?"} (${failure.ownerId ?? "?"}): ${shortName(failure.failureCode, /^FAILURE_CODE_/)} — ${failure.reason ?? ""}`;
      return item;
    });
    if (failures.length === 0) {
      const none = document.createElement("li");
      none.textContent = "none";
      failures.push(none);
    }
    $("failed-list").replaceChildren(...failures);
  }
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/** A date as a datetime-local input's value (local time, minutes). */
function localInputValue(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

start();
