/**
 * What every public API version's handlers are built from.
 */
import type { InternalClients } from "./internal-clients.js";

export interface HandlerDeps {
  readonly clients: InternalClients;
  /** Timeout of internal calls when the caller sets none. */
  readonly callTimeoutMs: number;
  /** How long a watch waits for a delivery accepted but not yet created; default 15 s. */
  readonly pendingDeliveryWaitMs?: number;
}
