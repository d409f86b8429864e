/**
 * The browser tests' platform and browser: scripts/run.ts (`make run`) in its own process group,
 * as test/run.test.ts and test/scale-out.test.ts start it, on a private block of loopback ports
 * and a temporary RUN_DIR, with NATS users and mutual TLS between the services as `make run` has
 * them, flights sped up (DRONE_TIME_SCALE), and a signing secret of its own so that the tests mint
 * customer and operator tokens with gateway/tokens.ts. Chromium is Debian's (scripts/ensure-chromium.sh),
 * driven by playwright-core. `stop()` ends the run by its process group (SIGTERM, then SIGKILL) and
 * kills whatever is left with the run's folder on its command line, also when a test failed.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { mintToken } from "../../gateway/tokens.js";
import { isFree } from "../harness/ports.js";
import { hasExited, killLeftovers, signalGroup } from "../harness/processes.js";
import { nodeArgsFor } from "../../lib/devtools/service-command.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const HOST = "127.0.0.1";
const SERVICES = ["account", "delivery", "drone", "ingestion", "package", "scheduler", "supervisor", "thirdparty"] as const;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A block of ports for one run: services at base+0..7 (metrics +1000), the gateway at base+10
 * (gRPC base+20, admin base+1010), NATS at base+30 and base+31, its cluster port base+32. Between
 * 21000 and 23000: below Linux's ephemeral range (no outgoing connection takes one meanwhile), clear
 * of scale-out's block (30000-32767) and of the ports people give `make run` by hand.
 */
async function pickBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21_000 + 40 * Math.floor(Math.random() * 50);
    const ports = [...[0, 1, 2, 3, 4, 5, 6, 7, 10].flatMap((o) => [base + o, base + o + 1000]), base + 20, base + 30, base + 31, base + 32];
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error("no free block of loopback ports for the platform");
}


/** Polls `probe` until it returns a value (not undefined), failing after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, context = () => ""): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${context() ? `:\n${context()}` : ""}`);
    await sleep(250);
  }
}

interface PidFile {
  instances: Record<string, { pid: number | null; restarts: number }>;
}

export interface Platform {
  /** The gateway's public URL, e.g. http://127.0.0.1:21050. */
  readonly url: string;
  /** A customer token (the seeded account `customerAccount`, no roles). */
  readonly customerToken: string;
  readonly customerAccount: string;
  /** An operator token (role `operator`). */
  readonly operatorToken: string;
  /** Everything the run printed so far. */
  output(): string;
  /** The run's pids.json entry of the gateway: its process id and how often it was restarted. */
  gateway(): { pid: number | null; restarts: number } | undefined;
  /** The console's sign-in URL for `token`. */
  consoleUrl(token: string): string;
  /** Stops the run by its process group and removes its folder; safe to call more than once. */
  stop(): Promise<void>;
}

/** Settings of the run; the caller's own come last. */
export interface PlatformOptions {
  /** Simulated seconds per real second of a flight (default 30). */
  timeScale?: number;
  env?: Record<string, string>;
}

/** Starts the whole platform as `make run` does and waits until the gateway answers. */
export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const base = await pickBase();
  const runDir = mkdtempSync(path.join(tmpdir(), "dd-browser-run-"));
  const secret = randomBytes(32).toString("hex");
  const url = `http://${HOST}:${base + 10}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RUN_DIR: runDir,
    NATS_PORT: String(base + 30),
    NATS_HTTP_PORT: String(base + 31),
    NATS_CLUSTER_PORT: String(base + 32),
    GATEWAY_PORT: String(base + 10),
    GATEWAY_GRPC_PORT: String(base + 20),
    GATEWAY_ADMIN_PORT: String(base + 1010),
    // Everything of this run lives in its RUN_DIR, whatever the shell has set for `make run`:
    // NATS users and the development PKI are made there; NATS auth and mutual TLS stay on.
    NATS_AUTH: "on",
    INTERNAL_TLS: "on",
    NATS_AUTH_DIR: "",
    INTERNAL_PKI_DIR: "",
    GATEWAY_DEV_SECRET_FILE: "",
    GATEWAY_JWT_SECRET: secret,
    NATS_URL: "",
    NATS_CLUSTER_SIZE: "1",
    NATS_REPLICAS: "",
    RUN_READY_TIMEOUT_MS: "180000",
    RUN_STOP_TIMEOUT_MS: "5000",
    // A gateway the tests kill comes back after some seconds: twice the page's 3 s polling, so
    // that the page notices it was down.
    RUN_RESTART_MIN_MS: "6000",
    RUN_RESTART_MAX_MS: "12000",
    DRONE_TIME_SCALE: String(options.timeScale ?? 30),
    THIRDPARTY_TIME_SCALE: "600",
    // The page polls and streams; the shared limit itself is tested with the gateway.
    GATEWAY_RATE_LIMIT_REQUESTS: "1000000",
    LOG_LEVEL: "info",
    ...options.env,
  };
  for (const [i, name] of SERVICES.entries()) {
    const prefix = name.toUpperCase();
    env[`${prefix}_PORT`] = String(base + i);
    env[`${prefix}_INSTANCES`] = "1";
    delete env[`${prefix}_ADDRESS`];
  }
  delete env["GATEWAY_INSTANCES"];

  const child = spawn(process.execPath, nodeArgsFor("scripts/run.ts"), {
    cwd: repoRoot,
    // Its own process group, like a terminal job: stopped as a whole.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let output = "";
  child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  // Last resort if the test process exits or is told to stop without stop(): the group goes with
  // it. On a signal the test process ends at once (a vitest worker does not let process.exit end
  // it), and Chromium, whose control pipe then closes, with it.
  const onExit = () => signalGroup(child, "SIGKILL");
  const onSignal = () => {
    onExit();
    rmSync(runDir, { recursive: true, force: true });
    process.kill(process.pid, "SIGKILL");
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  process.once("exit", onExit);
  for (const signal of signals) process.once(signal, onSignal);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener("exit", onExit);
    for (const signal of signals) process.removeListener(signal, onSignal);
    if (!hasExited(child)) {
      signalGroup(child, "SIGTERM");
      await Promise.race([closed, sleep(20_000)]);
    }
    signalGroup(child, "SIGKILL");
    // The children watch the run and stop by themselves; whatever is still there is killed.
    await killLeftovers(runDir);
    rmSync(runDir, { recursive: true, force: true });
  };

  try {
    const tail = () => output.slice(-4000);
    // run.ts prints the demo token once the gateway answers /healthz.
    await waitFor("the platform and its gateway", 240_000, () => {
      if (hasExited(child)) throw new Error(`the run exited before it was ready:\n${tail()}`);
      return /export TOKEN=\S+/.test(output) ? true : undefined;
    }, tail);
    // A demo account the account service seeds (make run's printed token is for it too); the
    // run's store is new, so the account has no deliveries yet.
    const customerAccount = "acct-demo";
    const customerToken = await mintToken(customerAccount, secret, 3600);
    const operatorToken = await mintToken("acct-operations", secret, 3600, ["operator"]);
    return {
      url,
      customerToken,
      customerAccount,
      operatorToken,
      output: () => output,
      gateway() {
        try {
          return (JSON.parse(readFileSync(path.join(runDir, "pids.json"), "utf8")) as PidFile).instances["gateway"];
        } catch {
          return undefined;
        }
      },
      consoleUrl: (token) => `${url}/#token=${token}`,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Chromium's binary: CHROMIUM_BIN, else what scripts/ensure-chromium.sh finds (installing it when missing). */
export function chromiumPath(): string {
  const found = spawnSync("bash", [path.join(repoRoot, "scripts", "ensure-chromium.sh"), "--print-path"], { encoding: "utf8" });
  const binary = found.stdout.trim().split("\n").at(-1);
  if (found.status !== 0 || !binary) throw new Error(`no Chromium to drive (make chromium):\n${found.stderr}`);
  return binary;
}

/** A headless Chromium (as root too: no sandbox), on loopback only. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    timeout: 60_000,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-proxy-server"],
  });
}
