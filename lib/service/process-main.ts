/**
 * The body of every process's main.ts (each service through `runServiceMain`, the gateway
 * directly): one logger (pino JSON at LOG_LEVEL, with trace ids), the process's metrics, its
 * start, the startup garbage collection once it is ready, and a graceful stop on SIGTERM or
 * SIGINT. Exit codes: 0 after a clean stop; 1 when it cannot start, fails to get ready, does not
 * stop cleanly, or gets a second signal while stopping.
 */
import pino, { type Logger } from "pino";
import { initMetrics } from "../observability/metrics.js";
import { traceLogFields } from "../observability/trace-ids.js";
import { shutdownTracing } from "../observability/tracing.js";
import { envString } from "./config.js";
import { collectStartupGarbage } from "./startup-memory.js";

/** A started process, as its main.ts knows it. */
export interface MainProcess {
  /** Resolves once it serves; a rejection ends the process (exit 1). Default: ready once started. */
  readonly ready?: Promise<void>;
  /** Drains and stops everything it started. */
  stop(): Promise<void>;
}

/** What the process says at each step (a log message each). */
export interface ProcessLines {
  /** It could not start (fatal, exit 1). */
  readonly startFailed: string;
  /** A signal came: it stops. */
  readonly stopping: string;
  /** Stopping failed (exit 1). */
  readonly stopFailed: string;
}

export interface ProcessMainOptions {
  /** Its name in logs, metrics and traces: its registry entry's name. */
  readonly name: string;
  /** Starts it with the process's logger. */
  start(log: Logger): Promise<MainProcess>;
  /** Its log messages; default those of the services ("cannot start", "draining", "error while stopping"). */
  readonly lines?: Partial<ProcessLines>;
}

const SERVICE_LINES: ProcessLines = { startFailed: "cannot start", stopping: "draining", stopFailed: "error while stopping" };

/** The logger of a process: pino JSON at LOG_LEVEL (default info), with the current trace's ids. */
export function processLogger(name: string, env: Readonly<Record<string, string | undefined>> = process.env): Logger {
  return pino({ name, level: envString(env, "LOG_LEVEL", "info"), mixin: traceLogFields });
}

/** Runs a process until SIGTERM or SIGINT (see the file's comment). */
export function runProcessMain(options: ProcessMainOptions): void {
  const lines: ProcessLines = { ...SERVICE_LINES, ...options.lines };
  const log = processLogger(options.name);
  initMetrics(options.name);
  const fail = (error: unknown): never => {
    log.fatal({ err: error }, lines.startFailed);
    process.exit(1);
  };
  options
    .start(log)
    .then((running) => {
      (running.ready ?? Promise.resolve()).then(collectStartupGarbage, fail);
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) {
          log.warn({ signal }, "second signal: exiting at once");
          process.exit(1);
        }
        log.info({ signal }, lines.stopping);
        running.stop().then(
          () => shutdownTracing().then(() => process.exit(0)),
          (error: unknown) => {
            log.error({ err: error }, lines.stopFailed);
            process.exit(1);
          },
        );
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    })
    .catch(fail);
}
