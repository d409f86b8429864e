/**
 * Background work repeated every `intervalMs` (a sweep, a reconciliation): one run at a time (a
 * tick that finds the previous run still going is skipped), failures logged by the caller's
 * `onError` and tried again at the next tick, and `stop()` waits for a run in progress. An
 * interval of 0 or less turns the work off. The timer does not keep the process alive.
 */
export interface Periodic {
  stop(): Promise<void>;
}

export function startPeriodic(intervalMs: number, work: () => Promise<unknown>, onError: (error: unknown) => void): Periodic {
  if (intervalMs <= 0) return { stop: async () => undefined };
  let running: Promise<void> | undefined;
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped || running) return;
    running = work()
      .then(
        () => undefined,
        (error: unknown) => onError(error),
      )
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
