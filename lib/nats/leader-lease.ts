/**
 * Leader election over one KV key: exactly one instance at a time holds the lease and does the
 * work that must have one doer (the drone service's flight simulator, the third-party service's
 * carrier simulator); the others stand by.
 *
 * The key holds the holder's instance id. The holder renews it every quarter of the lease with a
 * write checked against the revision it last wrote, and considers itself leader only until one
 * lease after the start of its last successful renewal. A standby reads the key at the same pace;
 * once it has seen the same revision for a whole lease (measured on its own clock from when it
 * first saw it, which is after the holder wrote it), the holder has stopped renewing: the standby
 * takes the key over with a write checked against that revision, so of several standbys exactly
 * one wins. A missing (or deleted) key is taken with a create-only write. No clocks are compared
 * between instances. A holder that stops cleanly deletes the key (checked against its revision),
 * so a standby takes over within a quarter of the lease instead of a whole one.
 */
import type { KV } from "nats";
import type { Logger } from "pino";
import { isRevisionConflict } from "../store/proto-kv-store.js";

export interface LeaderLeaseOptions {
  readonly kv: KV;
  readonly key: string;
  readonly instanceId: string;
  readonly leaseMs: number;
  readonly now: () => number;
  readonly log: Logger;
  /** What the leader does, for the log lines, e.g. "the flight simulation". Default "the leader's work". */
  readonly activity?: string;
  /** Called when this instance becomes leader. */
  readonly onLead: () => void;
  /** Called when it stops being leader (lost lease, or stopping). */
  readonly onFollow: () => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True for the errors of `kv.create` on a key that already holds a value. */
function isTaken(error: unknown): boolean {
  return isRevisionConflict(error) || /exists/i.test((error as Error | undefined)?.message ?? "");
}

export class LeaderLease {
  private leader = false;
  /** The revision this instance last wrote (while leader). */
  private revision = 0;
  /** Leader until then (epoch ms): one lease after the start of the last successful renewal. */
  private validUntil = 0;
  /** The holder's revision as last seen by this standby, and since when. */
  private seen: { revision: number; sinceMs: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: LeaderLeaseOptions) {}

  /** True while this instance holds a lease that has not run out. */
  isLeader(): boolean {
    return this.leader && this.options.now() < this.validUntil;
  }

  start(): void {
    const period = Math.max(20, Math.floor(this.options.leaseMs / 4));
    const step = (): void => {
      if (this.stopped) return;
      this.running = this.step()
        .catch((error: unknown) => this.options.log.warn({ err: error, key: this.options.key }, "leader lease step failed"))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(step, period).unref();
        });
    };
    step();
  }

  /** Stops taking part; a leader gives the lease up at once (deletes the key). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (!this.leader) return;
    this.follow("stopping");
    try {
      await this.options.kv.delete(this.options.key, { previousSeq: this.revision });
    } catch (error) {
      // Someone else holds it already, or NATS is gone: the lease runs out on its own.
      this.options.log.debug({ err: error, key: this.options.key }, "could not give the leader lease up");
    }
  }

  private activity(): string {
    return this.options.activity ?? "the leader's work";
  }

  private value(): Uint8Array {
    return encoder.encode(JSON.stringify({ instance: this.options.instanceId }));
  }

  private async step(): Promise<void> {
    const startedAt = this.options.now();
    const { kv, key } = this.options;
    if (this.leader) {
      try {
        this.revision = await kv.update(key, this.value(), this.revision);
        this.validUntil = startedAt + this.options.leaseMs;
      } catch (error) {
        if (isRevisionConflict(error)) this.follow("another instance took the lease");
        else if (!this.isLeader()) this.follow("could not renew the lease in time");
        else throw error;
      }
      return;
    }

    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT") {
      await this.take(() => kv.create(key, this.value()), startedAt);
      return;
    }
    if (this.seen?.revision !== entry.revision) {
      this.seen = { revision: entry.revision, sinceMs: startedAt };
      return;
    }
    if (startedAt - this.seen.sinceMs >= this.options.leaseMs) {
      const holder = safeHolder(entry.value);
      this.options.log.info({ holder, key }, "leader lease ran out; taking it over");
      await this.take(() => kv.update(key, this.value(), entry.revision), startedAt);
    }
  }

  private async take(write: () => Promise<number>, startedAt: number): Promise<void> {
    try {
      this.revision = await write();
    } catch (error) {
      if (isTaken(error)) return; // another standby won
      throw error;
    }
    if (this.stopped) {
      await this.options.kv.delete(this.options.key, { previousSeq: this.revision }).catch(() => undefined);
      return;
    }
    this.seen = undefined;
    this.leader = true;
    this.validUntil = startedAt + this.options.leaseMs;
    this.options.log.info({ instance: this.options.instanceId }, `leading ${this.activity()}`);
    this.options.onLead();
  }

  private follow(reason: string): void {
    if (!this.leader) return;
    this.leader = false;
    this.seen = undefined;
    this.options.log.info({ instance: this.options.instanceId, reason }, `no longer leading ${this.activity()}`);
    this.options.onFollow();
  }
}

function safeHolder(data: Uint8Array): string {
  try {
    return String((JSON.parse(decoder.decode(data)) as { instance?: unknown }).instance);
  } catch {
    return "unknown";
  }
}
