/**
 * The web console's files (built by scripts/build-console.mjs into .build/console/): `/` answers
 * index.html and `/console/<file>` the bundled script, style sheet and images. Both are public
 * (the page holds no data; its API calls carry the bearer token) and answered before the edge
 * checks, like `/healthz`. Bundled files are named after their content's hash, so browsers may
 * keep them for a year; index.html, which names them, is revalidated on every load. Only plain
 * file names directly in the folder are served: no sub-folders, no `..`, no hidden files.
 * Without a build, `/` answers 503 with the command that makes one.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { NodeHandler } from "./edge/index.js";

/** Where `make build` puts the console, from this file's own location (source or bundle). */
export const DEFAULT_CONSOLE_DIR = path.resolve(import.meta.dirname, "..", ".build", "console");

/** The path prefix of the console's assets. */
export const CONSOLE_ASSET_PREFIX = "/console/";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".json": "application/json; charset=utf-8",
};

/** What a browser may load for the page: everything from the gateway itself, nothing else. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  // leaflet positions its panes and markers with inline styles.
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const NOT_BUILT_MESSAGE =
  "The web console is not built. Run `make build` (or `node scripts/build-console.mjs`) in the repository, then reload this page.\n";

/** A plain file name in the folder: letters, digits, `.`, `-`, `_`, not starting with a dot. */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

function answer(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string | Buffer, cache: string): void {
  res.statusCode = status;
  res.setHeader("content-type", type);
  res.setHeader("cache-control", cache);
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("content-length", Buffer.byteLength(body));
  res.end(req.method === "HEAD" ? undefined : body);
}

async function readRegularFile(file: string): Promise<Buffer | undefined> {
  try {
    if (!(await stat(file)).isFile()) return undefined;
    return await readFile(file);
  } catch {
    return undefined;
  }
}

export interface ConsoleFiles {
  /** `/`: index.html, or 503 with how to build it. */
  readonly index: NodeHandler;
  /** `/console/<file>`: one of the built files, or 404. */
  readonly assets: NodeHandler;
}

/** Handlers serving the console built into `dir` (read on every request: a rebuild shows at once). */
export function consoleFiles(dir: string = DEFAULT_CONSOLE_DIR): ConsoleFiles {
  const root = path.resolve(dir);
  return {
    index(req, res) {
      readRegularFile(path.join(root, "index.html")).then(
        (body) => {
          if (!body) {
            answer(req, res, 503, "text/plain; charset=utf-8", NOT_BUILT_MESSAGE, "no-store");
            return;
          }
          res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
          res.setHeader("referrer-policy", "no-referrer");
          answer(req, res, 200, TYPES[".html"]!, body, "no-cache");
        },
        () => res.destroy(),
      );
    },
    assets(req, res) {
      const raw = (req.url ?? "").split("?")[0] ?? "";
      let name: string;
      try {
        name = decodeURIComponent(raw.slice(CONSOLE_ASSET_PREFIX.length));
      } catch {
        name = "";
      }
      const type = TYPES[path.extname(name)];
      const notFound = () => answer(req, res, 404, "text/plain; charset=utf-8", `no console file ${JSON.stringify(raw)}\n`, "no-store");
      // index.html and manifest.json are not assets; anything but a plain name is refused.
      if (!raw.startsWith(CONSOLE_ASSET_PREFIX) || !FILE_NAME.test(name) || name.includes("..") || !type || name === "index.html" || name === "manifest.json") {
        notFound();
        return;
      }
      const file = path.join(root, name);
      if (path.dirname(file) !== root) {
        notFound();
        return;
      }
      readRegularFile(file).then(
        (body) => (body ? answer(req, res, 200, type, body, "public, max-age=31536000, immutable") : notFound()),
        () => res.destroy(),
      );
    },
  };
}
