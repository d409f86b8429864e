/**
 * The background sweep: every `reclaimIntervalMs` it frees orphaned drone claims of the whole
 * fleet (see reclaim.ts), so a drone left claimed by a crashed call shows as available again even
 * when nobody is waiting for one. Every instance may sweep; the revision-checked writes make
 * concurrent sweeps harmless. The claimed drones come from the instance's fleet index once it has
 * caught up (no read of the whole fleet), else from a full read.
 */
import type { Logger } from "pino";
import { startPeriodic, type Periodic } from "../../lib/service/periodic.js";
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

export function startReclaimSweep(store: DroneStore, options: ReclaimSweepOptions): Periodic {
  const sweepOnce = async (): Promise<void> => {
    const index = options.index;
    const drones = index && (await index.sync(INDEX_SYNC_MS)) ? index.claimed(0) : await store.fleet();
    const freed = await reclaimOrphanedClaims(store, drones, options);
    if (freed > 0) options.log.warn({ freed }, "freed drones left claimed without an active assignment");
  };
  return startPeriodic(options.reclaimIntervalMs, sweepOnce, (error) =>
    options.log.warn({ err: error }, "reclaim sweep failed; trying again at the next interval"),
  );
}
