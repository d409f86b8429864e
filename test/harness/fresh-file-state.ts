/**
 * Setup of every file of the fast tier (vitest.config.ts). Its workers run one file after another
 * in one process (`isolate: false`), so what the platform keeps per process would otherwise carry
 * over from one file to the next: each file starts with the metrics zeroed and circuit states
 * forgotten, and tracing off with no default service, as in a process of its own.
 */
import { resetMetricsForTests } from "../../lib/observability/metrics.js";
import { shutdownTracing } from "../../lib/observability/tracing.js";

resetMetricsForTests();
await shutdownTracing();
