/**
 * What every public API version's handlers are built from.
 */
import type { IdempotencyStore } from "./idempotency.js";
import type { InternalClients } from "./internal-clients.js";

export interface HandlerDeps {
  readonly clients: InternalClients;
  /** Timeout of internal calls when the caller sets none. */
  readonly callTimeoutMs: number;
  /** Where request fingerprints per (owner, idempotency key) are kept; default: no check. */
  readonly idempotency?: IdempotencyStore;
}
