// The retry budget of one target: a token bucket that bounds retries to a fraction of the calls plus
// a small floor per second (as gRPC retry throttling and Finagle's RetryBudget do), so that a
// struggling target sees at most that much extra load however many callers fail at once.

export interface RetryBudgetOptions {
  /** Tokens each call deposits (0.2: retries may add 20% to the call volume). */
  readonly ratio: number;
  /** Tokens that accrue per second regardless of volume. */
  readonly minPerSecond: number;
  /** The current time in ms; defaults to Date.now (tests pass their own clock). */
  readonly now?: () => number;
}

/** Seconds of the per-second floor the bucket may save up, which bounds a burst of retries. */
const FLOOR_SECONDS_SAVED = 10;

export class RetryBudget {
  /** Most tokens the bucket holds. */
  readonly capacity: number;
  private readonly ratio: number;
  private readonly minPerSecond: number;
  private readonly now: () => number;
  private balance: number;
  private refilledAt: number;

  constructor(options: RetryBudgetOptions) {
    this.ratio = options.ratio;
    this.minPerSecond = options.minPerSecond;
    this.now = options.now ?? Date.now;
    this.capacity = Math.max(1, options.minPerSecond * FLOOR_SECONDS_SAVED);
    this.balance = options.minPerSecond > 0 ? this.capacity : 0;
    this.refilledAt = this.now();
  }

  /** Records a call (not a retry): it earns `ratio` tokens. */
  recordCall(): void {
    this.refill();
    this.balance = Math.min(this.capacity, this.balance + this.ratio);
  }

  /** Takes the token a retry costs; false when the budget is spent (the retry must not be sent). */
  tryRetry(): boolean {
    this.refill();
    if (this.balance < 1) {
      return false;
    }
    this.balance -= 1;
    return true;
  }

  /** Tokens available now (whole retries allowed = Math.floor of this). */
  available(): number {
    this.refill();
    return this.balance;
  }

  private refill(): void {
    const now = this.now();
    const elapsedMs = Math.max(0, now - this.refilledAt);
    this.refilledAt = now;
    if (this.minPerSecond > 0) {
      this.balance = Math.min(this.capacity, this.balance + (this.minPerSecond * elapsedMs) / 1000);
    }
  }
}
