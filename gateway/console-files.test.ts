/**
 * The web console's files through a real gateway: the page at `/`, its bundled assets under
 * `/console/` with their types and caching, nothing outside the folder, and a 503 naming the
 * build command while the console is not built. The console is built for the test into a
 * temporary folder (scripts/build-console.mjs --out), never the repository's .build/.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NOT_BUILT_MESSAGE } from "./console-files.js";
import { startGateway, type RunningGateway } from "./module.js";
import { TEST_PKI_DIR } from "./test-stack.js";

const SECRET = "console-test-secret-console-test-secret";
const REPO_ROOT = path.resolve(import.meta.dirname, "..");

let gateway: RunningGateway;
let work: string;
let built: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), "console-files-"));
  built = path.join(work, "console");
  await promisify(execFile)(process.execPath, [path.join(REPO_ROOT, "scripts", "build-console.mjs"), "--force", "--out", built], { cwd: REPO_ROOT });
  gateway = await startGateway({
    env: {
      GATEWAY_JWT_SECRET: SECRET,
      INTERNAL_PKI_DIR: TEST_PKI_DIR,
      GATEWAY_PORT: "0",
      GATEWAY_GRPC_PORT: "0",
      GATEWAY_CONSOLE_DIR: built,
      // Nothing listens here: the console's files need no service.
      INGESTION_ADDRESS: "127.0.0.1:9",
      DELIVERY_ADDRESS: "127.0.0.1:9",
    },
  });
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A request with the path sent exactly as given (fetch would normalize `..` away). */
function raw(method: string, rawPath: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { hostname, port } = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path: rawPath }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function assetPaths(): Promise<{ script: string; style: string }> {
  const page = await (await fetch(`${gateway.url}/`)).text();
  const script = /<script type="module" src="(\/console\/main-[A-Z0-9]+\.js)">/.exec(page)?.[1];
  const style = /<link rel="stylesheet" href="(\/console\/main-[A-Z0-9]+\.css)">/.exec(page)?.[1];
  if (!script || !style) throw new Error(`index.html names no bundle: ${page.slice(0, 400)}`);
  return { script, style };
}

describe("the web console's files", () => {
  it("answers / with the page, public, revalidated, with a policy that loads nothing from elsewhere", async () => {
    const res = await fetch(`${gateway.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
    const page = await res.text();
    expect(page).toContain('data-testid="banner-offline"');
    expect(page).toContain('data-testid="deliveries-table"');
    // Nothing loaded from another host (the sign-in hint quotes make run's URL as text).
    expect(page).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it("answers HEAD / with the headers and no body", async () => {
    const res = await raw("HEAD", "/");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(Number(res.headers["content-length"])).toBeGreaterThan(100);
    expect(res.body).toBe("");
  });

  it("serves the bundled script and style sheet with their types, cacheable for good", async () => {
    const { script, style } = await assetPaths();
    const js = await fetch(`${gateway.url}${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect((await js.text()).length).toBeGreaterThan(10_000);
    const css = await fetch(`${gateway.url}${style}`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    // leaflet's own style sheet is bundled in, its images beside it.
    const sheet = await css.text();
    expect(sheet).toContain(".leaflet-container");
    const image = /url\("?(\/console\/[A-Za-z0-9-]+\.png)"?\)/.exec(sheet)?.[1];
    expect(image).toBeDefined();
    const png = await fetch(`${gateway.url}${image}`);
    expect(png.status).toBe(200);
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await png.arrayBuffer()).subarray(1, 4).toString()).toBe("PNG");
  });

  it("serves no file outside the console's folder, nor its index or manifest as assets", async () => {
    for (const attempt of [
      "/console/../package.json",
      "/console/../../package.json",
      "/console/%2e%2e/%2e%2e/package.json",
      "/console/..%2f..%2fpackage.json",
      "/console/%2fetc%2fpasswd",
      "/console/manifest.json",
      "/console/index.html",
      "/console/.hidden.js",
      "/console/",
      "/console/missing-ABCDEFGH.js",
    ]) {
      const res = await raw("GET", attempt);
      expect(res.status, attempt).toBe(404);
      expect(res.body, attempt).not.toContain('"dependencies"');
    }
  });

  it("leaves the API's authentication as it is", async () => {
    const res = await fetch(`${gateway.url}/v1/deliveries`);
    expect(res.status).toBe(401);
  });

  it("answers / with 503 naming the build command while the console is not built", async () => {
    const away = `${built}-away`;
    renameSync(built, away);
    try {
      const res = await fetch(`${gateway.url}/`);
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      const text = await res.text();
      expect(text).toBe(NOT_BUILT_MESSAGE);
      expect(text).toContain("make build");
    } finally {
      renameSync(away, built);
    }
    expect((await fetch(`${gateway.url}/`)).status).toBe(200);
  });
});
