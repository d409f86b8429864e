// The web console in a real browser (Debian's Chromium driven by playwright-core) against the
// whole platform as `make run` starts it (test/browser/harness.ts): a customer schedules a
// delivery through the form and follows it on the map to COMPLETED, cancels another; a customer
// never sees the fleet (the gateway answers 403), an operator sees the drones move; the page says
// when the gateway is down and recovers when it is back. The page is found by the console's
// data-testid attributes only. A screenshot of the console goes to test-results/console.png.
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, repoRoot, sleep, startPlatform, waitFor, type Platform } from "./harness.js";

const SCREENSHOTS = path.join(repoRoot, "test-results");
/** How long a flight of a few kilometres may take at the run's time scale on a loaded machine. */
const FLIGHT_MS = 120_000;

let platform: Platform | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];
const pages: Page[] = [];

beforeAll(async () => {
  // Pictures of an earlier run's failures go; this run's own are written after.
  mkdirSync(SCREENSHOTS, { recursive: true });
  for (const file of readdirSync(SCREENSHOTS)) if (/^failed-.*\.png$/.test(file)) rmSync(path.join(SCREENSHOTS, file));
  const [started, launched] = await Promise.allSettled([startPlatform({ timeScale: 30 }), launchBrowser()]);
  if (launched.status === "fulfilled") browser = launched.value;
  if (started.status === "fulfilled") platform = started.value;
  if (started.status === "rejected") throw started.reason;
  if (launched.status === "rejected") throw launched.reason;
}, 300_000);

afterAll(async () => {
  await Promise.allSettled(contexts.map((c) => c.close()));
  await browser?.close().catch(() => undefined);
  await platform?.stop();
}, 60_000);

// A failed test leaves a picture of every page it opened; every test's pages close after it.
afterEach(async (context) => {
  if (context.task.result?.state === "fail") {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const name = context.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    await Promise.allSettled(pages.map((p, i) => p.screenshot({ path: path.join(SCREENSHOTS, `failed-${name}-${i}.png`) })));
  }
  pages.length = 0;
  await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
}, 30_000);

function running(): Platform {
  if (!platform) throw new Error("the platform did not start");
  return platform;
}

/** A fresh browser session signed in with `token` through the console URL, its map shown. */
async function openConsole(token: string): Promise<Page> {
  if (!browser) throw new Error("no browser");
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  contexts.push(context);
  const page = await context.newPage();
  pages.push(page);
  page.on("dialog", (dialog) => void dialog.accept());
  await page.goto(running().consoleUrl(token));
  await page.getByTestId("map").waitFor({ state: "visible", timeout: 30_000 });
  // The token leaves the address once it is kept.
  await waitFor("the token to leave the address", 10_000, () => (page.url().includes("token=") ? undefined : true));
  return page;
}

/** The ids of the delivery rows in the table now. */
async function rowIds(page: Page): Promise<string[]> {
  const ids = await page
    .getByTestId("deliveries-table")
    .locator('[data-testid^="delivery-row-"]')
    .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-testid") ?? ""));
  return ids.map((id) => id.slice("delivery-row-".length));
}

const row = (page: Page, id: string): Locator => page.getByTestId(`delivery-row-${id}`);
const rowStage = (page: Page, id: string): Locator => row(page, id).getByTestId("delivery-stage");

/** Fills the schedule form, submits it and returns the id of the row that appears for it. */
async function scheduleThroughForm(page: Page, pickup: [number, number], dropoff: [number, number]): Promise<string> {
  const before = new Set(await rowIds(page));
  const form = page.getByTestId("schedule-form");
  await form.getByTestId("pickup-lat").fill(String(pickup[0]));
  await form.getByTestId("pickup-lng").fill(String(pickup[1]));
  await form.getByTestId("dropoff-lat").fill(String(dropoff[0]));
  await form.getByTestId("dropoff-lng").fill(String(dropoff[1]));
  await form.getByTestId("package-size").selectOption("PACKAGE_SIZE_SMALL");
  await form.getByTestId("package-weight").fill("1.5");
  await form.getByTestId("schedule-submit").click();
  return waitFor("the new delivery's row", 30_000, async () => (await rowIds(page)).find((id) => !before.has(id)));
}

/** Waits until the row's stage reads `stage`, failing early on another ended stage. */
async function untilRowStage(page: Page, id: string, stage: string, timeoutMs = FLIGHT_MS): Promise<void> {
  const ended = ["COMPLETED", "CANCELLED", "FAILED"].filter((s) => s !== stage);
  await waitFor(`delivery ${id} to show ${stage}`, timeoutMs, async () => {
    const text = (await rowStage(page, id).textContent({ timeout: 5_000 }).catch(() => ""))?.trim() ?? "";
    if (ended.includes(text)) throw new Error(`delivery ${id} ended ${text}, not ${stage}`);
    return text === stage ? true : undefined;
  });
}

async function api(token: string, route: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${running().url}${route}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(init.headers as Record<string, string> | undefined) },
    signal: AbortSignal.timeout(15_000),
  });
}

let parcel = 0;
/** A delivery requested through the REST API (as another client of the account would). */
async function scheduleByApi(token: string, dropoff: [number, number]): Promise<string> {
  parcel++;
  const response = await api(token, "/v1/deliveryrequests", {
    method: "POST",
    headers: { "idempotency-key": `browser-${process.pid}-${parcel}` },
    body: JSON.stringify({
      pickup: { latitude: 47.61, longitude: -122.33 },
      dropoff: { latitude: dropoff[0], longitude: dropoff[1] },
      deadline: new Date(Date.now() + 6 * 3600_000).toISOString(),
      packageInfo: { packageId: `pkg-browser-${process.pid}-${parcel}`, size: "PACKAGE_SIZE_SMALL", weightKg: 1.5 },
    }),
  });
  const text = await response.text();
  expect(response.status, text).toBe(202);
  return (JSON.parse(text) as { deliveryId: string }).deliveryId;
}

interface FleetDrone {
  droneId: string;
  deliveryId?: string;
}

async function fleet(token: string): Promise<FleetDrone[]> {
  const response = await api(token, "/v1/fleet/drones");
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return (JSON.parse(text) as { drones?: FleetDrone[] }).drones ?? [];
}

/**
 * Where the drone markers on the map matching `selector` are drawn now, keyed by `attribute`
 * (the customer's map marks the drone carrying a delivery with `data-delivery-id`, the operator's
 * every drone with `data-drone-id`).
 */
async function markerPlaces(page: Page, attribute: "data-delivery-id" | "data-drone-id"): Promise<Map<string, string>> {
  const places = await page
    .getByTestId("map")
    .locator(`.drone-marker[${attribute}]`)
    .evaluateAll(
      (markers, name) =>
        markers.map((m) => {
          const box = m.getBoundingClientRect();
          return [m.getAttribute(name) ?? "", `${m.getAttribute("style") ?? ""} ${box.x.toFixed(1)},${box.y.toFixed(1)}`] as const;
        }),
      attribute,
    );
  return new Map(places);
}

describe("the web console in Chromium", () => {
  it("schedules a delivery through the form, follows its drone on the map to COMPLETED, and saves a screenshot", async () => {
    const page = await openConsole(running().customerToken);
    const id = await scheduleThroughForm(page, [47.61, -122.33], [47.625, -122.35]);
    await expect.poll(() => row(page, id).isVisible()).toBe(true);

    // Followed on the map: the marker of the drone carrying it is drawn at more than one place
    // while it flies, and the row ends COMPLETED.
    const places = new Set<string>();
    await waitFor(`delivery ${id} to complete`, FLIGHT_MS, async () => {
      const place = (await markerPlaces(page, "data-delivery-id")).get(id);
      if (place) places.add(place);
      const stage = (await rowStage(page, id).textContent())?.trim() ?? "";
      if (stage === "CANCELLED" || stage === "FAILED") throw new Error(`delivery ${id} ended ${stage}`);
      return stage === "COMPLETED" ? true : undefined;
    });
    expect(places.size, "places where the delivery's drone marker was drawn during the flight").toBeGreaterThan(1);

    // Its detail view: the stage and the timeline of what happened.
    await row(page, id).click();
    const detail = page.getByTestId("delivery-detail");
    await detail.waitFor({ state: "visible", timeout: 10_000 });
    await expect.poll(async () => (await detail.getByTestId("detail-stage").textContent())?.trim(), { timeout: 15_000 }).toBe("COMPLETED");
    await expect.poll(() => detail.getByTestId("detail-timeline").locator("li").count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);

    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, "console.png") });
  });

  it("cancels a delivery from its detail view and shows CANCELLED", async () => {
    const page = await openConsole(running().customerToken);
    // A long flight, so that it is still under way when the button is pressed.
    const id = await scheduleThroughForm(page, [47.61, -122.33], [47.75, -122.2]);
    await row(page, id).click();
    const detail = page.getByTestId("delivery-detail");
    await detail.waitFor({ state: "visible", timeout: 10_000 });
    await detail.getByTestId("cancel-button").click();
    await untilRowStage(page, id, "CANCELLED", 60_000);
    await expect.poll(async () => (await detail.getByTestId("detail-stage").textContent())?.trim(), { timeout: 30_000 }).toBe("CANCELLED");
    // The gateway agrees.
    const response = await api(running().customerToken, `/v1/deliveries/${encodeURIComponent(id)}`);
    expect(((await response.json()) as { stage?: string }).stage).toBe("DELIVERY_STAGE_CANCELLED");
  });

  it("never shows a customer the fleet (the gateway answers 403), and shows an operator every drone moving", async () => {
    const { customerToken, operatorToken } = running();
    // The gateway, not the page, keeps the fleet from customers.
    const denied = await api(customerToken, "/v1/fleet/drones");
    expect(denied.status, await denied.text()).toBe(403);

    const customer = await openConsole(customerToken);
    await customer.getByTestId("deliveries-table").waitFor({ state: "visible", timeout: 30_000 });
    const tab = customer.getByTestId("operator-tab");
    if (await tab.isVisible()) {
      expect(await tab.textContent()).toMatch(/operators only/i);
      await tab.click();
    }
    await sleep(1_000);
    expect(await customer.getByTestId("operator-view").isVisible()).toBe(false);
    expect(await customer.locator('[data-testid^="drone-row-"]').count()).toBe(0);

    // Two drones in the air for the operator to watch.
    const flying = [await scheduleByApi(customerToken, [47.7, -122.25]), await scheduleByApi(customerToken, [47.52, -122.4])];
    const drones = await waitFor("a drone assigned to each delivery", 60_000, async () => {
      const assigned = (await fleet(operatorToken)).filter((d) => d.deliveryId && flying.includes(d.deliveryId));
      return assigned.length === flying.length ? assigned.map((d) => d.droneId) : undefined;
    });

    const operator = await openConsole(operatorToken);
    await operator.getByTestId("operator-tab").click();
    const view = operator.getByTestId("operator-view");
    await view.waitFor({ state: "visible", timeout: 30_000 });
    const table = view.getByTestId("fleet-table");
    // Every drone of the fleet has its row.
    const all = (await fleet(operatorToken)).map((d) => d.droneId);
    await expect.poll(() => table.locator('[data-testid^="drone-row-"]').count(), { timeout: 30_000 }).toBe(all.length);

    // Every drone has its marker on the map.
    await expect.poll(async () => [...(await markerPlaces(operator, "data-drone-id")).keys()].sort(), { timeout: 30_000 }).toEqual([...all].sort());

    // Each flying drone's position changes in its row and its marker moves on the map while it flies.
    const positions = new Map<string, Set<string>>(drones.map((d) => [d, new Set<string>()]));
    const places = new Map<string, Set<string>>(drones.map((d) => [d, new Set<string>()]));
    await waitFor("every flying drone's position to change", FLIGHT_MS, async () => {
      const markers = await markerPlaces(operator, "data-drone-id");
      for (const drone of drones) {
        const text = (await table.getByTestId(`drone-row-${drone}`).getByTestId("drone-position").textContent())?.trim() ?? "";
        if (/^-?\d+\.\d{5}, -?\d+\.\d{5}$/.test(text)) positions.get(drone)!.add(text);
        const place = markers.get(drone);
        if (place) places.get(drone)!.add(place);
      }
      const moved = (seen: Map<string, Set<string>>, times: number) => [...seen.values()].every((s) => s.size >= times);
      return moved(positions, 3) && moved(places, 2) ? true : undefined;
    });
    await expect.poll(() => view.getByTestId("fleet-utilization").textContent(), { timeout: 15_000 }).toMatch(/\d/);
    for (const id of flying) await api(customerToken, `/v1/deliveryrequests/${encodeURIComponent(id)}`, { method: "DELETE" });
  });

  it("says the gateway is offline while it is down, and recovers when it is back", async () => {
    const page = await openConsole(running().customerToken);
    await page.getByTestId("deliveries-table").waitFor({ state: "visible", timeout: 30_000 });
    const banner = page.getByTestId("banner-offline");
    expect(await banner.isVisible()).toBe(false);

    const before = running().gateway();
    expect(before?.pid, "the gateway's pid in pids.json").toBeGreaterThan(0);
    process.kill(before!.pid!, "SIGKILL");
    await banner.waitFor({ state: "visible", timeout: 30_000 });
    expect(await banner.textContent()).toMatch(/gateway|offline|reach/i);

    // make run starts it again; the banner goes and the page shows new data.
    await waitFor("the gateway to be restarted", 60_000, () => {
      const now = running().gateway();
      return now?.pid && now.pid !== before!.pid && now.restarts > before!.restarts ? true : undefined;
    });
    await banner.waitFor({ state: "hidden", timeout: 60_000 });
    const id = await scheduleThroughForm(page, [47.61, -122.33], [47.615, -122.34]);
    await untilRowStage(page, id, "COMPLETED");
  });
});
