// Reads an object-mode stream of grpc-js (the requests of a server call, the responses of a client
// call) as an async iterator.
//
// Unlike Readable's own iterator it keeps flow control without destroying the stream when the
// consumer stops early: a bidi call must go on writing after its reader is done.

import type { Readable } from "node:stream";

const HIGH_WATER = 16;
const LOW_WATER = 4;

export interface StreamReaderOptions {
  /** The error to throw when the stream is closed before it ends (e.g. the call was cancelled). */
  readonly closedError: () => unknown;
  /** Converts an error the stream emitted into the error the consumer sees. */
  readonly mapError?: (error: unknown) => unknown;
}

export function readStream<T>(stream: Readable, options: StreamReaderOptions): AsyncIterableIterator<T> {
  return new StreamReader<T>(stream, options);
}

class StreamReader<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiters: (() => void)[] = [];
  private error: { value: unknown } | undefined;
  private ended = false;
  private finished = false;
  private paused = false;

  constructor(
    private readonly stream: Readable,
    private readonly options: StreamReaderOptions,
  ) {
    stream.on("data", (item: T) => {
      if (this.finished) {
        return;
      }
      this.queue.push(item);
      if (this.queue.length >= HIGH_WATER && !this.paused) {
        this.paused = true;
        stream.pause();
      }
      this.wake();
    });
    // The listener stays for the stream's lifetime: an 'error' without listeners would crash.
    stream.on("error", (error: unknown) => {
      this.error ??= { value: error };
      // Let what is still buffered flow to the queue so the stream can reach its end.
      this.resume();
      this.wake();
    });
    stream.once("end", () => {
      this.ended = true;
      this.wake();
    });
    stream.once("close", () => {
      if (!this.ended && this.error === undefined) {
        this.error = { value: options.closedError() };
      }
      this.ended = true;
      this.wake();
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      if (this.finished) {
        return { done: true, value: undefined };
      }
      const item = this.queue.shift();
      if (item !== undefined) {
        if (this.queue.length <= LOW_WATER) {
          this.resume();
        }
        return { done: false, value: item };
      }
      if (this.ended) {
        this.finished = true;
        if (this.error !== undefined) {
          const mapError = this.options.mapError ?? ((e: unknown) => e);
          throw mapError(this.error.value);
        }
        return { done: true, value: undefined };
      }
      this.resume();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    this.stop();
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<T, undefined>> {
    this.stop();
    throw error;
  }

  /** The consumer is done: drop what is queued and what still arrives. */
  private stop(): void {
    this.finished = true;
    this.queue.length = 0;
    this.resume();
    this.wake();
  }

  private resume(): void {
    if (this.paused) {
      this.paused = false;
      this.stream.resume();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) {
      resolve();
    }
  }
}
