/**
 * The flight simulator's lease: the platform's KV leader lease (lib/nats/leader-lease.ts), held
 * on the key `LEADER_KEY` of the `drones` bucket, its log lines naming the flight simulation.
 */
import { LeaderLease as KvLeaderLease, type LeaderLeaseOptions } from "../../lib/nats/leader-lease.js";

export type { LeaderLeaseOptions };

export class LeaderLease extends KvLeaderLease {
  constructor(options: LeaderLeaseOptions) {
    super({ activity: "the flight simulation", ...options });
  }
}
