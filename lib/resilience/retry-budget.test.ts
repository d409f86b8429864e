// The retry budget: retries are bounded by a fraction of the calls plus a per-second floor that
// saves up to a bounded burst.
import { describe, expect, it } from "vitest";
import { RetryBudget } from "./retry-budget.js";

function clock(start = 0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe("RetryBudget", () => {
  it("allows one retry per 1/ratio calls when there is no floor", () => {
    const time = clock();
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0, now: time.now });
    expect(budget.tryRetry()).toBe(false);
    for (let i = 0; i < 5; i++) {
      budget.recordCall();
    }
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
    time.advance(60_000);
    expect(budget.tryRetry()).toBe(false);
  });

  it("starts full with the floor's burst and refills at the floor's rate", () => {
    const time = clock();
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 2, now: time.now });
    expect(budget.capacity).toBe(20);
    for (let i = 0; i < 20; i++) {
      expect(budget.tryRetry()).toBe(true);
    }
    expect(budget.tryRetry()).toBe(false);
    time.advance(500);
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
    time.advance(3_600_000);
    expect(budget.available()).toBe(20);
  });

  it("never saves more than its capacity from calls", () => {
    const time = clock();
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0, now: time.now });
    for (let i = 0; i < 1_000; i++) {
      budget.recordCall();
    }
    expect(budget.available()).toBe(budget.capacity);
  });
});
