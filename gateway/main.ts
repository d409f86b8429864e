/**
 * Runs the gateway from the environment until SIGTERM or SIGINT.
 */
import pino from "pino";
import { initMetrics } from "../lib/observability/metrics.js";
import { traceLogFields } from "../lib/observability/trace-ids.js";
import { shutdownTracing } from "../lib/observability/tracing.js";
import { collectStartupGarbage } from "../lib/service/startup-memory.js";
import { DEFAULT_DEV_SECRET_FILE } from "./config.js";
import { startGateway } from "./module.js";

const log = pino({ name: "gateway", level: process.env["LOG_LEVEL"]?.trim() || "info", mixin: traceLogFields });
initMetrics("gateway");

async function main(): Promise<void> {
  const gateway = await startGateway({ log });
  log.info({ url: gateway.url, grpcUrl: gateway.grpcUrl, metricsUrl: gateway.metricsUrl }, "gateway listening");
  collectStartupGarbage();
  if (gateway.usesDevSecret) {
    log.warn(
      { file: process.env.GATEWAY_DEV_SECRET_FILE ?? DEFAULT_DEV_SECRET_FILE },
      "GATEWAY_JWT_SECRET is not set: tokens are checked with the development secret",
    );
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "gateway stopping");
    gateway.close().then(
      () => shutdownTracing().then(() => process.exit(0)),
      (error: unknown) => {
        log.error({ err: error }, "gateway did not stop cleanly");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: unknown) => {
  log.error({ err: error }, "gateway failed to start");
  process.exit(1);
});
