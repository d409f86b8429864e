// A target's policy with fake attempts: which calls are retried and when retries stop, refusal of a
// spent budget, the circuit (open, fail fast, half-open trial, close) and the bulkhead.
import { setTimeout as sleep } from "node:timers/promises";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { notFound, retryDelayMs, unavailable } from "../grpc/errors.js";
import { CircuitOpenError } from "./breaker.js";
import { BulkheadFullError } from "./bulkhead.js";
import type { ResilienceConfig } from "./config.js";
import { BudgetSpentError, runWithDeadline } from "./deadline.js";
import type { CircuitStateName } from "./hooks.js";
import { createTargetPolicy, type TargetPolicy } from "./policy.js";

const read = DeliveryApiService.method.getDelivery; // NO_SIDE_EFFECTS
const idempotent = DeliveryApiService.method.cancelDelivery; // IDEMPOTENT
const unmarked = DeliveryApiService.method.scheduleDelivery; // no idempotency_level
const stream = DeliveryApiService.method.watchDelivery; // server streaming

const TARGET = "delivery:50051";

/** Small delays and no breaker trips unless a test asks for them. */
const FAST: Partial<ResilienceConfig> = {
  retryInitialBackoffMs: 2,
  retryMaxBackoffMs: 10,
  breakerMinCalls: 1_000,
};

const policies: TargetPolicy[] = [];
afterEach(() => {
  for (const policy of policies.splice(0)) {
    policy.dispose();
  }
});

function policyOf(config: Partial<ResilienceConfig> = {}, hooks: Parameters<typeof createTargetPolicy>[2] = {}): TargetPolicy {
  const policy = createTargetPolicy(TARGET, { ...FAST, ...config }, hooks);
  policies.push(policy);
  return policy;
}

function inMs(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** An attempt function that fails with `failures` in turn, then answers "ok"; counts its calls. */
function scripted(...failures: ConnectError[]) {
  const calls: { attempt: number; deadline: Date; at: number }[] = [];
  const fn = async (deadline: Date, attempt: number): Promise<string> => {
    calls.push({ attempt, deadline, at: Date.now() });
    const failure = failures[attempt - 1];
    if (failure !== undefined) {
      throw failure;
    }
    return "ok";
  };
  return { fn, calls };
}

async function failureOf(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected the call to fail");
}

const down = () => new ConnectError("connection refused", Code.Unavailable);

describe("retries", () => {
  it("retries a NO_SIDE_EFFECTS method on UNAVAILABLE and succeeds", async () => {
    const retries: [string, string, number, number][] = [];
    const policy = policyOf({ retryMaxAttempts: 3 }, {
      onRetry: (target, path, attempt, error) => retries.push([target, path, attempt, error.code]),
    });
    const attempt = scripted(down(), down());
    const deadline = inMs(5_000);
    await expect(policy.execute(read, attempt.fn, { deadline })).resolves.toBe("ok");
    expect(attempt.calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(attempt.calls.every((c) => c.deadline === deadline)).toBe(true);
    expect(retries).toEqual([
      [TARGET, "/dronedelivery.api.v1.DeliveryApiService/GetDelivery", 2, Code.Unavailable],
      [TARGET, "/dronedelivery.api.v1.DeliveryApiService/GetDelivery", 3, Code.Unavailable],
    ]);
  });

  it("stops after the maximum attempts with the last error", async () => {
    const policy = policyOf({ retryMaxAttempts: 3 });
    const last = unavailable("still down");
    const attempt = scripted(down(), down(), last, down());
    expect(await failureOf(policy.execute(read, attempt.fn, { deadline: inMs(5_000) }))).toBe(last);
    expect(attempt.calls).toHaveLength(3);
  });

  it("retries an IDEMPOTENT method", async () => {
    const attempt = scripted(down());
    await expect(policyOf().execute(idempotent, attempt.fn, { deadline: inMs(5_000) })).resolves.toBe("ok");
    expect(attempt.calls).toHaveLength(2);
  });

  it("never retries a method without an idempotency level", async () => {
    const attempt = scripted(down());
    expect((await failureOf(policyOf().execute(unmarked, attempt.fn, { deadline: inMs(5_000) }))).code).toBe(Code.Unavailable);
    expect(attempt.calls).toHaveLength(1);
  });

  it("never retries an answer about the request", async () => {
    for (const error of [notFound("delivery d-1"), new ConnectError("bad", Code.InvalidArgument), new ConnectError("bug", Code.Internal)]) {
      const attempt = scripted(error);
      expect(await failureOf(policyOf().execute(read, attempt.fn, { deadline: inMs(5_000) }))).toBe(error);
      expect(attempt.calls).toHaveLength(1);
    }
  });

  it("does not retry DEADLINE_EXCEEDED: the attempt had the whole deadline", async () => {
    const attempt = scripted(new ConnectError("deadline exceeded", Code.DeadlineExceeded));
    expect((await failureOf(policyOf().execute(read, attempt.fn, { deadline: inMs(5_000) }))).code).toBe(Code.DeadlineExceeded);
    expect(attempt.calls).toHaveLength(1);
  });

  it("stops retrying when the target's retry budget is spent", async () => {
    const throttled: string[] = [];
    // A budget of exactly one retry: no share of calls, a floor too slow to refill during the test.
    const policy = policyOf(
      { retryMaxAttempts: 5, retryBudgetRatio: 0, retryBudgetMinPerSecond: 0.1 },
      { onRetryThrottled: (_target, path) => throttled.push(path) },
    );
    const first = scripted(down(), down(), down(), down(), down());
    await failureOf(policy.execute(read, first.fn, { deadline: inMs(5_000) }));
    expect(first.calls).toHaveLength(2);
    const second = scripted(down(), down(), down(), down(), down());
    await failureOf(policy.execute(read, second.fn, { deadline: inMs(5_000) }));
    expect(second.calls).toHaveLength(1);
    expect(throttled).toHaveLength(2);
  });

  it("never starts an attempt or a backoff past the deadline", async () => {
    const policy = policyOf({ retryMaxAttempts: 10, retryInitialBackoffMs: 20, retryMaxBackoffMs: 40, retryBudgetMinPerSecond: 100 });
    const deadline = inMs(120);
    const calls: number[] = [];
    const failure = await failureOf(
      policy.execute(
        read,
        async () => {
          calls.push(Date.now());
          await sleep(15);
          throw down();
        },
        { deadline },
      ),
    );
    const ended = Date.now();
    expect(failure.code).toBe(Code.Unavailable);
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls.length).toBeLessThan(10);
    for (const startedAt of calls) {
      expect(startedAt).toBeLessThan(deadline.getTime());
    }
    // The last attempt ends on its own (15 ms); generous bound for a loaded machine.
    expect(ended).toBeLessThan(deadline.getTime() + 1_000);
  });

  it("does not retry when the server's requested pause would end past the deadline", async () => {
    const attempt = scripted(unavailable("overloaded, come back later", 10_000));
    const failure = await failureOf(policyOf().execute(read, attempt.fn, { deadline: inMs(2_000) }));
    expect(retryDelayMs(failure)).toBe(10_000);
    expect(attempt.calls).toHaveLength(1);
  });

  it("ends a backoff with CANCELLED when the caller aborts", async () => {
    const controller = new AbortController();
    const policy = policyOf({ retryInitialBackoffMs: 5_000, retryMaxBackoffMs: 5_000 });
    // Full jitter may draw a tiny delay; the attempt aborts the call itself before failing.
    const attempt = async (_deadline: Date, attemptNumber: number): Promise<string> => {
      if (attemptNumber === 1) {
        controller.abort();
      }
      throw down();
    };
    const failure = await failureOf(policy.execute(read, attempt, { deadline: inMs(60_000), signal: controller.signal }));
    expect(failure.code).toBe(Code.Canceled);
  });
});

describe("deadline budget", () => {
  it("refuses with DEADLINE_EXCEEDED, without calling the attempt, when the budget is spent", async () => {
    const policy = policyOf();
    for (const deadline of [inMs(-10), inMs(2)]) {
      const attempt = scripted();
      const failure = await failureOf(policy.execute(read, attempt.fn, { deadline }));
      expect(failure).toBeInstanceOf(BudgetSpentError);
      expect(failure.code).toBe(Code.DeadlineExceeded);
      expect(attempt.calls).toHaveLength(0);
    }
  });

  it("caps a call by the incoming budget and refuses it once that is spent", async () => {
    const policy = policyOf();
    const incoming = inMs(300);
    await runWithDeadline(incoming, async () => {
      expect(policy.deadlineFor(read)).toEqual(incoming);
      expect(policy.deadlineFor(read, { timeoutMs: 60_000 })).toEqual(incoming);
      expect(policy.deadlineFor(read, { timeoutMs: 10 })!.getTime()).toBeLessThan(incoming.getTime());
    });
    const spent = inMs(-1);
    await runWithDeadline(spent, async () => {
      const attempt = scripted();
      const deadline = policy.deadlineFor(read)!;
      expect((await failureOf(policy.execute(read, attempt.fn, { deadline }))).code).toBe(Code.DeadlineExceeded);
      expect(attempt.calls).toHaveLength(0);
    });
  });

  it("uses the method class's default timeout outside any budget", () => {
    const policy = policyOf({ readTimeoutMs: 2_000, writeTimeoutMs: 5_000 });
    const before = Date.now();
    const readDeadline = policy.deadlineFor(read)!.getTime();
    const writeDeadline = policy.deadlineFor(unmarked)!.getTime();
    expect(readDeadline - before).toBeGreaterThanOrEqual(2_000);
    expect(readDeadline - before).toBeLessThan(3_000);
    expect(writeDeadline - before).toBeGreaterThanOrEqual(5_000);
    expect(writeDeadline - before).toBeLessThan(6_000);
    expect(policy.deadlineFor(stream)).toBeUndefined();
  });
});

describe("circuit breaker", () => {
  const BREAKER: Partial<ResilienceConfig> = {
    retryMaxAttempts: 1,
    breakerFailureRatio: 0.5,
    breakerWindowMs: 10_000,
    breakerMinCalls: 4,
    breakerHalfOpenAfterMs: 60,
  };

  async function trip(policy: TargetPolicy, method: DescMethod = read): Promise<void> {
    for (let i = 0; i < 4; i++) {
      await failureOf(policy.execute(method, scripted(down()).fn, { deadline: inMs(5_000) }));
    }
  }

  it("opens after failures, fails fast, half-opens after the delay and closes on success", async () => {
    const states: CircuitStateName[] = [];
    const rejected: string[] = [];
    const policy = policyOf(BREAKER, {
      onStateChange: (target, state) => {
        expect(target).toBe(TARGET);
        states.push(state);
      },
      onCircuitRejected: (_target, path) => rejected.push(path),
    });
    await trip(policy);
    expect(policy.state()).toBe("open");
    expect(states).toEqual(["open"]);

    const refused = scripted();
    const failure = await failureOf(policy.execute(read, refused.fn, { deadline: inMs(5_000) }));
    expect(refused.calls).toHaveLength(0);
    expect(failure).toBeInstanceOf(CircuitOpenError);
    expect(failure.code).toBe(Code.Unavailable);
    expect(failure.rawMessage).toMatch(/^delivery:50051 is failing; calls are refused for \d+(\.\d)?s \(circuit open\)$/);
    expect(retryDelayMs(failure)).toBeGreaterThan(0);
    expect(rejected).toHaveLength(1);

    await sleep(90);
    const trial = scripted();
    await expect(policy.execute(read, trial.fn, { deadline: inMs(5_000) })).resolves.toBe("ok");
    expect(trial.calls).toHaveLength(1);
    expect(states).toEqual(["open", "half_open", "closed"]);
    expect(policy.state()).toBe("closed");
  });

  it("opens again when the trial call fails, and refuses others while the trial runs", async () => {
    const states: CircuitStateName[] = [];
    const policy = policyOf(BREAKER, { onStateChange: (_target, state) => states.push(state) });
    await trip(policy);
    await sleep(90);

    let failTrial!: () => void;
    const trialCalls: number[] = [];
    const trial = policy.execute(
      read,
      async () => {
        trialCalls.push(Date.now());
        await new Promise<void>((resolve) => (failTrial = resolve));
        throw down();
      },
      { deadline: inMs(5_000) },
    );
    await sleep(5);
    expect(policy.state()).toBe("half_open");
    const other = scripted();
    const refused = await failureOf(policy.execute(read, other.fn, { deadline: inMs(5_000) }));
    expect(refused.rawMessage).toMatch(/trial call is in flight \(circuit half-open\)$/);
    expect(other.calls).toHaveLength(0);

    failTrial();
    expect((await failureOf(trial)).code).toBe(Code.Unavailable);
    expect(trialCalls).toHaveLength(1);
    expect(policy.state()).toBe("open");
    expect(states).toEqual(["open", "half_open", "open"]);
  });

  it("does not count answers about the request", async () => {
    const policy = policyOf(BREAKER);
    for (let i = 0; i < 10; i++) {
      await failureOf(policy.execute(read, scripted(notFound("delivery d-1")).fn, { deadline: inMs(5_000) }));
      await failureOf(policy.execute(read, scripted(new ConnectError("ended", Code.FailedPrecondition)).fn, { deadline: inMs(5_000) }));
    }
    expect(policy.state()).toBe("closed");
  });

  it("needs the failure ratio over the minimum number of calls", async () => {
    const policy = policyOf(BREAKER);
    await failureOf(policy.execute(read, scripted(down()).fn, { deadline: inMs(5_000) }));
    await failureOf(policy.execute(read, scripted(down()).fn, { deadline: inMs(5_000) }));
    await policy.execute(read, scripted().fn, { deadline: inMs(5_000) });
    expect(policy.state()).toBe("closed"); // 3 calls: under the minimum of 4
    for (let i = 0; i < 3; i++) {
      await policy.execute(read, scripted().fn, { deadline: inMs(5_000) });
    }
    expect(policy.state()).toBe("closed"); // 2 failures of 6: under 50%
    await failureOf(policy.execute(read, scripted(down()).fn, { deadline: inMs(5_000) }));
    expect(policy.state()).toBe("closed"); // 3 of 7
    await failureOf(policy.execute(read, scripted(down()).fn, { deadline: inMs(5_000) }));
    expect(policy.state()).toBe("open"); // 4 of 8
  });

  it("stops the retries of a call once the circuit opens", async () => {
    const policy = policyOf({ ...BREAKER, retryMaxAttempts: 5, breakerMinCalls: 2 });
    const attempt = scripted(down(), down(), down(), down(), down());
    const failure = await failureOf(policy.execute(read, attempt.fn, { deadline: inMs(5_000) }));
    expect(attempt.calls).toHaveLength(2);
    expect(failure.code).toBe(Code.Unavailable);
    expect(policy.state()).toBe("open");
  });

  it("admits streams only while the circuit lets calls through, and counts their outcome", async () => {
    const policy = policyOf(BREAKER);
    const admitted = policy.admit(stream, { deadline: inMs(5_000) });
    expect(admitted.deadline).toBeInstanceOf(Date);
    admitted.established();
    // Streams that fail before they answer count like failed calls.
    for (let i = 0; i < 4; i++) {
      policy.admit(stream).finished(down());
    }
    await sleep(1);
    expect(policy.state()).toBe("open");
    expect(() => policy.admit(stream)).toThrow(CircuitOpenError);

    await sleep(90);
    const trial = policy.admit(stream);
    await sleep(1);
    expect(policy.state()).toBe("half_open");
    trial.established();
    trial.finished(down()); // after it answered: not a failure of the target
    await sleep(1);
    expect(policy.state()).toBe("closed");
  });

  it("refuses a stream whose budget is spent", () => {
    expect(() => policyOf().admit(stream, { deadline: inMs(-1) })).toThrow(BudgetSpentError);
  });
});

describe("bulkhead", () => {
  function held() {
    let release!: () => void;
    const started: number[] = [];
    const gate = new Promise<void>((resolve) => (release = resolve));
    const fn = async (_deadline: Date, attempt: number): Promise<string> => {
      started.push(attempt);
      await gate;
      return "ok";
    };
    return { fn, started, release };
  }

  it("refuses with RESOURCE_EXHAUSTED when the slots and the queue are full", async () => {
    const rejected: string[] = [];
    const policy = policyOf({ bulkheadMaxConcurrent: 1, bulkheadQueue: 1 }, { onBulkheadRejected: (_t, path) => rejected.push(path) });
    const running = held();
    const queued = held();
    const first = policy.execute(read, running.fn, { deadline: inMs(5_000) });
    const second = policy.execute(read, queued.fn, { deadline: inMs(5_000) });
    const third = scripted();
    const failure = await failureOf(policy.execute(read, third.fn, { deadline: inMs(5_000) }));
    expect(failure).toBeInstanceOf(BulkheadFullError);
    expect(failure.code).toBe(Code.ResourceExhausted);
    expect(failure.rawMessage).toMatch(/^delivery:50051 has too many calls in flight \(1 running, 1 waiting\)/);
    expect(third.calls).toHaveLength(0);
    expect(rejected).toEqual(["/dronedelivery.api.v1.DeliveryApiService/GetDelivery"]);

    await sleep(5);
    expect(running.started).toEqual([1]);
    expect(queued.started).toEqual([]);
    running.release();
    queued.release();
    await expect(first).resolves.toBe("ok");
    await expect(second).resolves.toBe("ok");
    expect(queued.started).toEqual([1]);
  });

  it("gives up waiting at the deadline without starting the call, and hands the slot on", async () => {
    const policy = policyOf({ bulkheadMaxConcurrent: 1, bulkheadQueue: 2 });
    const running = held();
    const first = policy.execute(read, running.fn, { deadline: inMs(5_000) });
    const impatient = scripted();
    const waiting = policy.execute(read, impatient.fn, { deadline: inMs(30) });
    const patient = held();
    const last = policy.execute(read, patient.fn, { deadline: inMs(5_000) });

    const failure = await failureOf(waiting);
    expect(failure.code).toBe(Code.DeadlineExceeded);
    expect(failure.rawMessage).toMatch(/no free slot for delivery:50051 before the deadline/);
    expect(impatient.calls).toHaveLength(0);

    running.release();
    patient.release();
    await expect(first).resolves.toBe("ok");
    await expect(last).resolves.toBe("ok");
    expect(patient.started).toEqual([1]);
  });
});
