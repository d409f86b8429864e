/**
 * Runs the gateway from the environment until SIGTERM or SIGINT, through the same process kit as
 * every service (lib/service/process-main.ts: logger, metrics, startup garbage collection,
 * graceful stop, exit codes).
 */
import { runProcessMain } from "../lib/service/process-main.js";
import { GATEWAY_NAME } from "../lib/service/registry.js";
import { DEFAULT_DEV_SECRET_FILE } from "./config.js";
import { startGateway } from "./module.js";

runProcessMain({
  name: GATEWAY_NAME,
  lines: { startFailed: "gateway failed to start", stopping: "gateway stopping", stopFailed: "gateway did not stop cleanly" },
  async start(log) {
    const gateway = await startGateway({ log });
    log.info({ url: gateway.url, grpcUrl: gateway.grpcUrl, metricsUrl: gateway.metricsUrl }, "gateway listening");
    if (gateway.usesDevSecret) {
      log.warn(
        { file: process.env.GATEWAY_DEV_SECRET_FILE ?? DEFAULT_DEV_SECRET_FILE },
        "GATEWAY_JWT_SECRET is not set: tokens are checked with the development secret",
      );
    }
    return { stop: () => gateway.close() };
  },
});
