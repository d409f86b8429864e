/**
 * Start-up leaves garbage behind (module initialisation, descriptors, the first connections) in a
 * young generation that grew to hold it; V8 keeps that memory until a full collection, which an
 * idle process may never get. Once a process is ready it asks for one full collection, which
 * returns the memory to the system: a few MB per process. Only when the process was started with
 * `--expose-gc` (compiled processes are: lib/devtools/service-command.ts); otherwise nothing.
 */
const SETTLE_DELAY_MS = 2_000;

/** Collects the start-up garbage shortly after the process became ready (not keeping it alive). */
export function collectStartupGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return;
  setTimeout(() => gc(), SETTLE_DELAY_MS).unref();
}
