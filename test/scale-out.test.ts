// Every service type scaled out, as `make run` runs it: scripts/run.ts with two instances of each
// service and two gateways (mutual TLS, NATS users), on its own nats-server, ports and RUN_DIR.
// Deliveries go through both gateways (drone-flown ones and heavy ones an outside carrier takes);
// then, with some of them in progress, one instance of every type is SIGKILLed by its process id
// (the flying drone simulator and the publishing carrier simulator among them), and every delivery,
// those under way and new ones sent to the surviving gateway, reaches COMPLETED through the
// survivors, the surviving drone and carrier simulators taking over. The run does not restart the
// killed instances during the test (its restart back-off is set beyond the test's length).
// The run is stopped by its process group after the test, also on failure or time-out, and any
// process left is killed (found by the run's temp folder on its command line).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { isFree } from "./harness/ports.js";
import { hasExited, killLeftovers, processesMentioning, signalGroup } from "./harness/processes.js";
import { nodeArgsFor } from "../lib/devtools/service-command.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";
const SERVICES = ["account", "delivery", "drone", "ingestion", "package", "scheduler", "supervisor", "thirdparty"] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tempDirs: string[] = [];
let run: ChildProcess | undefined;
let runDir = "";
let output = "";

/**
 * Ports for the run: services at base+0..7 (instances +100, metrics +1000), gateway public at
 * base+10, gRPC at base+20 (instances +100, admin +1000), NATS at base+30 and base+31. Between
 * 30000 and Linux's ephemeral range (32768), so that no outgoing connection takes one meanwhile,
 * and clear of the ports people give `make run` (the defaults, and those shifted by 10000 or 20000).
 */
async function pickBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 30_000 + 40 * Math.floor(Math.random() * 38);
    const ports = [
      ...[0, 1, 2, 3, 4, 5, 6, 7, 10].flatMap((o) => [base + o, base + o + 100, base + o + 1000, base + o + 1100]),
      base + 20,
      base + 120,
      base + 30,
      base + 31,
    ];
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error("no free block of ports");
}


afterAll(async () => {
  if (run && !hasExited(run)) {
    signalGroup(run, "SIGTERM");
    const until = Date.now() + 20_000;
    while (!hasExited(run) && Date.now() < until) await sleep(100);
  }
  signalGroup(run, "SIGKILL");
  // The children watch the run and stop by themselves; whatever is still there is killed.
  if (runDir) await killLeftovers(runDir);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (run && hasExited(run)) throw new Error(`the run exited while waiting for ${what}:\n${output.slice(-4000)}`);
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; run output so far:\n${output.slice(-4000)}`);
    await sleep(250);
  }
}

interface PidFile {
  instances: Record<string, { service: string; pid: number | null }>;
}

function readPids(): PidFile | undefined {
  try {
    return JSON.parse(readFileSync(path.join(runDir, "pids.json"), "utf8")) as PidFile;
  } catch {
    return undefined;
  }
}

function logOf(label: string): string {
  const file = path.join(runDir, "logs", `${label.replace("#", "-")}.log`);
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}

/** True when the instance's last word on `activity` in its log is that it leads it. */
function saysItLeads(label: string, activity: string): boolean {
  const last = logOf(label)
    .split("\n")
    .filter((l) => l.includes(`leading ${activity}`))
    .at(-1);
  return last !== undefined && !last.includes("no longer leading");
}

/** The one instance (`drone#1` or `drone#2`) of two that leads `activity` now, by their logs. */
function leaderOf(service: string, activity: string): string | undefined {
  const leading = [1, 2].map((i) => `${service}#${i}`).filter((label) => saysItLeads(label, activity));
  return leading.length === 1 ? leading[0] : undefined;
}

interface Submitted {
  id: string;
  heavy: boolean;
}

describe("every service type scaled out (make run with two instances of each)", () => {
  it(
    "keeps completing deliveries through the survivors when one instance of every type is SIGKILLed",
    { timeout: 600_000 },
    async () => {
      const base = await pickBase();
      runDir = mkdtempSync(path.join(tmpdir(), "dd-scale-out-"));
      tempDirs.push(runDir);
      const gatewayUrls = [`http://${HOST}:${base + 10}`, `http://${HOST}:${base + 110}`];
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        RUN_DIR: runDir,
        NATS_PORT: String(base + 30),
        NATS_HTTP_PORT: String(base + 31),
        GATEWAY_PORT: String(base + 10),
        GATEWAY_GRPC_PORT: String(base + 20),
        GATEWAY_ADMIN_PORT: String(base + 1010),
        GATEWAY_INSTANCES: "2",
        // Everything of this run lives in its RUN_DIR, whatever the shell has set for `make run`.
        NATS_AUTH_DIR: "",
        INTERNAL_PKI_DIR: "",
        GATEWAY_DEV_SECRET_FILE: "",
        GATEWAY_JWT_SECRET: "",
        NATS_URL: "",
        RUN_READY_TIMEOUT_MS: "180000",
        RUN_STOP_TIMEOUT_MS: "5000",
        // A killed instance stays dead for the whole test: only the survivors work.
        RUN_RESTART_MIN_MS: "600000",
        RUN_RESTART_MAX_MS: "600000",
        // Flights of a few seconds, carriers' bookings of about five; leases and redeliveries short.
        DRONE_TIME_SCALE: "60",
        THIRDPARTY_TIME_SCALE: "1200",
        DRONE_SIMULATOR_LEASE_MS: "2000",
        THIRDPARTY_SIMULATOR_LEASE_MS: "2000",
        SCHEDULER_ACK_WAIT_MS: "5000",
        SUPERVISOR_ACK_WAIT_MS: "5000",
        DELIVERY_TELEMETRY_ACK_WAIT_MS: "5000",
        DELIVERY_RECONCILE_INTERVAL_MS: "5000",
        DELIVERY_RECONCILE_QUIET_MS: "5000",
        // The test polls often; the shared limit itself is tested in gateway/edge/shared-rate-limit.test.ts.
        GATEWAY_RATE_LIMIT_REQUESTS: "1000000",
        LOG_LEVEL: "info",
      };
      for (const [i, name] of SERVICES.entries()) {
        const prefix = name.toUpperCase();
        env[`${prefix}_PORT`] = String(base + i);
        env[`${prefix}_INSTANCES`] = "2";
        delete env[`${prefix}_ADDRESS`];
      }
      run = spawn(process.execPath, nodeArgsFor("scripts/run.ts"), {
        cwd: repoRoot,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env,
      });
      run.stdout?.on("data", (c: Buffer) => (output += c.toString()));
      run.stderr?.on("data", (c: Buffer) => (output += c.toString()));

      const token = await waitFor("the platform and the gateway's token", 300_000, () => /export TOKEN=(\S+)/.exec(output)?.[1]);
      // The table lists every instance of every type, the gateways included.
      for (const name of [...SERVICES, "gateway"]) {
        for (const i of [1, 2]) expect(output).toMatch(new RegExp(`^\\s+(services\\s+)?${name}#${i}\\s+127\\.0\\.0\\.1:\\d+\\s+SERVING`, "m"));
      }
      expect(output).toContain(`gateway#2: ${gatewayUrls[1]}`);
      const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

      let parcel = 0;
      const submit = async (gateway: string, heavy: boolean): Promise<Submitted> => {
        parcel++;
        const key = `scale-out-${process.pid}-${parcel}`;
        const body = JSON.stringify({
          pickup: { latitude: 47.61, longitude: -122.33 + parcel * 0.001 },
          dropoff: { latitude: 47.64, longitude: -122.37 },
          deadline: new Date(Date.now() + 6 * 3600_000).toISOString(),
          packageInfo: { packageId: `pkg-${key}`, size: heavy ? "PACKAGE_SIZE_LARGE" : "PACKAGE_SIZE_SMALL", weightKg: heavy ? 40 : 1.5 },
        });
        // Retried with the same key while an instance that died is still being balanced away from.
        const answer = await waitFor(`the delivery request ${key} to be accepted by ${gateway}`, 60_000, async () => {
          try {
            const response = await fetch(`${gateway}/v1/deliveryrequests`, {
              method: "POST",
              headers: { ...headers, "idempotency-key": key },
              body,
              signal: AbortSignal.timeout(15_000),
            });
            const text = await response.text();
            if (response.status === 202) return text;
            if ([502, 503, 504].includes(response.status)) return undefined;
            throw new Error(`POST answered ${response.status}: ${text}`);
          } catch (error) {
            if ((error as Error).message.startsWith("POST answered")) throw error;
            return undefined;
          }
        });
        return { id: (JSON.parse(answer) as { deliveryId: string }).deliveryId, heavy };
      };
      const stageOf = async (gateway: string, id: string): Promise<string | undefined> => {
        try {
          const response = await fetch(`${gateway}/v1/deliveries/${encodeURIComponent(id)}`, { headers, signal: AbortSignal.timeout(10_000) });
          if (response.status !== 200) return undefined;
          return (JSON.parse(await response.text()) as { stage?: string }).stage;
        } catch {
          return undefined;
        }
      };
      const allCompleted = async (gateway: string, deliveries: readonly Submitted[], what: string) => {
        await waitFor(`${what} to complete`, 240_000, async () => {
          const stages = await Promise.all(deliveries.map((d) => stageOf(gateway, d.id)));
          const ended = stages.filter((s) => s && /COMPLETED|FAILED|CANCELLED/.test(s));
          if (ended.length < deliveries.length) return undefined;
          return stages;
        }).then((stages) => expect(stages, what).toEqual(deliveries.map(() => "DELIVERY_STAGE_COMPLETED")));
      };

      // 1. Both gateways take deliveries; both kinds complete.
      const first: Submitted[] = [];
      for (const [i, heavy] of [false, false, true, false].entries()) first.push(await submit(gatewayUrls[i % 2]!, heavy));
      await allCompleted(gatewayUrls[0]!, first, "the deliveries sent before the kills");

      // 2. More deliveries, and the kills while they are under way.
      const second: Submitted[] = [];
      for (const [i, heavy] of [false, true, false, false].entries()) second.push(await submit(gatewayUrls[i % 2]!, heavy));
      await waitFor("a drone of the second batch in the air", 60_000, async () => {
        const stages = await Promise.all(second.filter((d) => !d.heavy).map((d) => stageOf(gatewayUrls[0]!, d.id)));
        return stages.some((s) => s && /HEADED_TO/.test(s)) ? true : undefined;
      });
      const droneLeader = await waitFor("the flying drone instance", 30_000, () => leaderOf("drone", "the flight simulation"));
      const carrierLeader = await waitFor("the publishing carrier simulator", 30_000, () => leaderOf("thirdparty", "the carrier simulation"));
      const pids = readPids();
      expect(pids).toBeDefined();
      const victims = [
        ...SERVICES.map((name) => (name === "drone" ? droneLeader : name === "thirdparty" ? carrierLeader : `${name}#1`)),
        "gateway#1",
      ];
      const survivorLog = (label: string) => label.replace(/#(\d)$/, (_, n: string) => `#${n === "1" ? 2 : 1}`);
      const logSizeAtKill = new Map(
        victims.map((label) => {
          const file = path.join(runDir, "logs", `${survivorLog(label).replace("#", "-")}.log`);
          return [label, existsSync(file) ? statSync(file).size : 0] as const;
        }),
      );
      for (const label of victims) {
        const pid = pids!.instances[label]?.pid;
        expect(pid, `${label} in pids.json`).toBeGreaterThan(0);
        process.kill(pid!, "SIGKILL");
      }
      await waitFor("the run to see every kill", 30_000, () =>
        victims.every((label) => new RegExp(`${label.replace("#", "\\#")} \\(pid \\d+\\) exited unexpectedly .*signal SIGKILL`).test(output))
          ? true
          : undefined,
      );

      // 3. New deliveries through the surviving gateway; everything under way and new completes.
      const third: Submitted[] = [];
      for (const heavy of [false, true, false]) third.push(await submit(gatewayUrls[1]!, heavy));
      await allCompleted(gatewayUrls[1]!, [...second, ...third], "the deliveries under way at the kills and those sent after");

      // The survivors took the simulations over (a lease that ran out: the killed holder never gave it back).
      for (const [service, leader, activity] of [
        ["drone", droneLeader, "the flight simulation"],
        ["thirdparty", carrierLeader, "the carrier simulation"],
      ] as const) {
        const survivor = survivorLog(leader);
        const after = logOf(survivor).slice(logSizeAtKill.get(leader) ?? 0);
        expect(after, `${survivor} took ${activity} over`).toMatch(/leader lease ran out; taking it over/);
        // The killed one never said it stopped; the survivor's last word is that it leads.
        expect(saysItLeads(survivor, activity), `${survivor} leads ${activity} (${service})`).toBe(true);
      }

      // 4. A clean stop.
      const child = run;
      const closed = new Promise((r) => (hasExited(child) ? r(undefined) : child.once("close", r)));
      signalGroup(child, "SIGINT");
      await Promise.race([closed, sleep(60_000)]);
      expect(child.exitCode, output.slice(-4000)).toBe(0);
      expect(processesMentioning(runDir)).toEqual([]);
    },
  );
});
