/**
 * The background sweep: every `reclaimIntervalMs` it frees orphaned drone claims of the whole
 * fleet (see reclaim.ts), so a drone left claimed by a crashed call shows as available again even
 * when nobody is waiting for one. Every instance may sweep; the revision-checked writes make
 * concurrent sweeps harmless. The claimed drones come from the instance's fleet index once it has
 * caught up (no read of the whole fleet), else from a full read.
 */
import type { Logger } from "pino";
import type { SyncedFleetView } from "./fleet-index.js";
import { reclaimOrphanedClaims, type ReclaimOptions } from "./reclaim.js";
import type { DroneStore } from "./store.js";

export interface ReclaimSweepOptions extends ReclaimOptions {
  /** 0 turns the sweep off. */
  readonly reclaimIntervalMs: number;
  readonly log: Logger;
  readonly index?: SyncedFleetView;
}

const INDEX_SYNC_MS = 5_000;

export interface ReclaimSweep {
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
}

export function startReclaimSweep(store: DroneStore, options: ReclaimSweepOptions): ReclaimSweep {
  if (options.reclaimIntervalMs <= 0) return { stop: async () => undefined };
  let running: Promise<void> | undefined;
  let stopped = false;
  const sweepOnce = async (): Promise<void> => {
    try {
      const index = options.index;
      const drones = index && (await index.sync(INDEX_SYNC_MS)) ? index.claimed(0) : await store.fleet();
      const freed = await reclaimOrphanedClaims(store, drones, options);
      if (freed > 0) options.log.warn({ freed }, "freed drones left claimed without an active assignment");
    } catch (error) {
      options.log.warn({ err: error }, "reclaim sweep failed; trying again at the next interval");
    }
  };
  const timer = setInterval(() => {
    // One sweep at a time: a tick that finds one still running is skipped.
    if (stopped || running) return;
    running = sweepOnce().finally(() => {
      running = undefined;
    });
  }, options.reclaimIntervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
