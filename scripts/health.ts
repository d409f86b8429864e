/**
 * `npx tsx scripts/health.ts`: asks every service instance of a running `make run` for its health
 * (grpc.health.v1) and the gateway for /healthz, as the `operator` identity: mutual TLS with the
 * development certificates of the run (INTERNAL_PKI_DIR, default <RUN_DIR>/pki), the same way
 * `make run` probes them. The instances come from <RUN_DIR>/pids.json (RUN_DIR default .run).
 * Exit status 0 when every instance is SERVING, 1 otherwise.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { healthStatus } from "../lib/service/health-probe.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const runDir = path.resolve(repoRoot, process.env["RUN_DIR"]?.trim() || ".run");
const env: NodeJS.ProcessEnv = { ...process.env, INTERNAL_PKI_DIR: process.env["INTERNAL_PKI_DIR"]?.trim() || path.join(runDir, "pki") };

interface PidFile {
  instances: Record<string, { service: string; pid: number | null; address: string | null }>;
}

async function main(): Promise<void> {
  const file = path.join(runDir, "pids.json");
  let pids: PidFile;
  try {
    pids = JSON.parse(readFileSync(file, "utf8")) as PidFile;
  } catch {
    console.error(`${file} is missing: is the platform running (make run)?`);
    process.exit(1);
  }
  let healthy = true;
  const rows = await Promise.all(
    Object.entries(pids.instances).map(async ([label, instance]) => {
      if (!instance.address) return [label, "-", "n/a"];
      let status: string;
      if (instance.service === "gateway") {
        status = await fetch(`http://${instance.address}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
          (r) => (r.ok ? "SERVING" : `HTTP ${r.status}`),
          (e: Error) => e.message,
        );
      } else {
        status = await healthStatus(instance.address, "", 2_000, env).catch((e: Error) => e.message);
      }
      if (status !== "SERVING") healthy = false;
      return [label, instance.address, status];
    }),
  );
  const width = Math.max(...rows.map(([label]) => label!.length));
  for (const [label, address, status] of rows) console.log(`${label!.padEnd(width)}  ${address!.padEnd(15)}  ${status}`);
  process.exitCode = healthy ? 0 : 1;
}

void main();
