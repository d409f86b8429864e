// The bulkhead of one target (cockatiel's BulkheadPolicy): at most N calls in flight, a short queue
// behind them, and RESOURCE_EXHAUSTED beyond that, so one slow target cannot take every socket,
// timer and request of the process with it.
//
// A queued call waits no longer than its deadline (or its caller). cockatiel's queue has no deadline,
// and a waiter cancelled through its signal, when it reaches the head, is dropped without starting
// the next one; so a waiter that gives up is instead marked abandoned and, when its turn comes, ends
// at once through the normal path, which hands its slot on.

import { Code, ConnectError } from "@connectrpc/connect";
import { bulkhead, isBulkheadRejectedError, type BulkheadPolicy } from "cockatiel";
import { ConnectErrorKind } from "../grpc/errors.js";
import { callHook, type ResilienceHooks } from "./hooks.js";

/** RESOURCE_EXHAUSTED for a call refused without being sent, because the target's bulkhead is full. */
export class BulkheadFullError extends ConnectErrorKind {
  readonly target: string;

  constructor(target: string, maxConcurrent: number, queue: number) {
    super(
      `${target} has too many calls in flight (${maxConcurrent} running, ${queue} waiting); the call was refused`,
      Code.ResourceExhausted,
    );
    this.target = target;
  }
}

export interface BulkheadOptions {
  readonly maxConcurrent: number;
  readonly queue: number;
}

export class TargetBulkhead {
  private readonly policy: BulkheadPolicy;

  constructor(
    private readonly target: string,
    private readonly options: BulkheadOptions,
    private readonly hooks: Pick<ResilienceHooks, "onBulkheadRejected"> = {},
  ) {
    this.policy = bulkhead(options.maxConcurrent, options.queue);
  }

  /** Free slots now. */
  get freeSlots(): number {
    return this.policy.executionSlots;
  }

  /** Free queue places now. */
  get freeQueue(): number {
    return this.policy.queueSlots;
  }

  /**
   * Runs `fn` in a slot: at once when one is free, after waiting in the queue otherwise. Throws a
   * BulkheadFullError when the queue is full too; DEADLINE_EXCEEDED (or CANCELLED) when the deadline
   * passes (or `signal` aborts) before a slot frees up, and then `fn` never runs.
   */
  run<T>(path: string, deadline: Date | undefined, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.policy.executionSlots > 0) {
      return this.policy.execute(() => fn());
    }
    if (this.policy.queueSlots <= 0) {
      callHook(() => this.hooks.onBulkheadRejected?.(this.target, path));
      return Promise.reject(new BulkheadFullError(this.target, this.options.maxConcurrent, this.options.queue));
    }
    return this.waitForSlot(path, deadline, signal, fn);
  }

  private waitForSlot<T>(path: string, deadline: Date | undefined, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const queuedAt = Date.now();
    let started = false;
    let abandoned = false;
    const queued = this.policy.execute(() => {
      if (abandoned) {
        return Promise.reject(new Error("abandoned while waiting for a slot"));
      }
      started = true;
      return fn();
    });
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanUp = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const giveUp = (error: ConnectError): void => {
        if (!started && !abandoned) {
          abandoned = true;
          cleanUp();
          reject(error);
        }
      };
      const onAbort = (): void =>
        giveUp(new ConnectError(`${path}: call cancelled by the caller`, Code.Canceled, undefined, undefined, signal?.reason));
      if (deadline !== undefined) {
        timer = setTimeout(
          () =>
            giveUp(
              new ConnectError(
                `${path}: no free slot for ${this.target} before the deadline ` +
                  `(${this.options.maxConcurrent} calls in flight, waited ${Date.now() - queuedAt} ms); the call was not started`,
                Code.DeadlineExceeded,
              ),
            ),
          Math.max(0, deadline.getTime() - queuedAt),
        );
      }
      if (signal?.aborted === true) {
        onAbort();
      } else {
        signal?.addEventListener("abort", onAbort, { once: true });
      }
      queued.then(
        (value) => {
          cleanUp();
          if (!abandoned) {
            resolve(value);
          }
        },
        (err: unknown) => {
          cleanUp();
          if (abandoned) {
            return;
          }
          if (isBulkheadRejectedError(err)) {
            callHook(() => this.hooks.onBulkheadRejected?.(this.target, path));
            reject(new BulkheadFullError(this.target, this.options.maxConcurrent, this.options.queue));
            return;
          }
          reject(err);
        },
      );
    });
  }
}
