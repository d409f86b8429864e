// The life of one server call: its HandlerContext, cancellation, and the single final status.

import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata, type ServerUnaryCall, type StatusObject } from "@grpc/grpc-js";
import { methodPath } from "./codec.js";
import { STATUS_OK, statusFromError } from "./status.js";
import { recordServerCall } from "../observability/metrics.js";
import { startServerSpan, type ServerSpan } from "../observability/trace-grpc.js";
import { runWithDeadline } from "../resilience/deadline.js";
import type { AddServiceOptions, HandlerContext } from "./types.js";

/** What every grpc-js server call offers, whatever its kind. */
export type SurfaceCall = Pick<ServerUnaryCall<unknown, Buffer>, "metadata" | "getPeer" | "sendMetadata" | "getDeadline"> & {
  once(event: "cancelled", listener: () => void): unknown;
};

/** How the call's kind delivers its final status. */
export interface Finisher {
  ok(response: Buffer | undefined, trailer: Metadata): void;
  fail(status: StatusObject): void;
}

export const CANCELLED: unique symbol = Symbol("cancelled");

/**
 * Sent for a response header or trailer no handler asked for. grpc-js only reads what it is given
 * (headers are turned into HTTP/2 headers, a trailer is copied), so one empty instance serves all.
 */
const NO_METADATA = new Metadata();

// Timers may fire a little before the clock reaches the deadline.
const DEADLINE_TOLERANCE_MS = 5;

/**
 * The HandlerContext of one call. What most handlers never touch is made on first use: the
 * cancellation signal (an AbortController) and the response header and trailer metadata.
 */
class ScopeContext implements HandlerContext {
  private controller: AbortController | undefined;
  private cancelledWith: ConnectError | undefined;
  private header: Metadata | undefined;
  private trailer: Metadata | undefined;

  constructor(
    readonly service: HandlerContext["service"],
    readonly method: DescMethod,
    readonly path: string,
    readonly peer: string,
    readonly metadata: Metadata,
    readonly deadline: Date | undefined,
  ) {}


  timeRemainingMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline.getTime() - Date.now();
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.cancelledWith !== undefined) this.controller.abort(this.cancelledWith);
    }
    return this.controller.signal;
  }

  get responseHeader(): Metadata {
    return (this.header ??= new Metadata());
  }

  get responseTrailer(): Metadata {
    return (this.trailer ??= new Metadata());
  }

  /** The response header, or undefined when no handler asked for it. */
  get headerIfMade(): Metadata | undefined {
    return this.header;
  }

  /** The response trailer, or undefined when no handler asked for it. */
  get trailerIfMade(): Metadata | undefined {
    return this.trailer;
  }

  /** Whether anything was put in the response header. */
  get hasResponseHeader(): boolean {
    return this.header !== undefined && Object.keys(this.header.getMap()).length > 0;
  }

  /** Fires the signal (now, or as it is made) with `reason`. */
  cancel(reason: ConnectError): void {
    this.cancelledWith = reason;
    this.controller?.abort(reason);
  }
}

export class CallScope {
  readonly ctx: HandlerContext;
  readonly path: string;
  readonly trace: ServerSpan;
  private readonly context: ScopeContext;
  private readonly started: number;
  private cancelledPromise: Promise<typeof CANCELLED> | undefined;
  private headersSent = false;
  private finished = false;

  constructor(
    private readonly call: SurfaceCall,
    readonly method: DescMethod,
    private readonly finisher: Finisher,
    private readonly options: AddServiceOptions,
  ) {
    this.path = methodPath(method);
    this.trace = startServerSpan(this.path, call.metadata, { service: options.serviceName });
    this.started = performance.now();
    const deadline = toDate(call.getDeadline());
    this.context = new ScopeContext(method.parent, method, this.path, call.getPeer(), call.metadata, deadline);
    this.ctx = this.context;
    // grpc-js also emits 'cancelled' after a status was sent; only an unfinished call is cancelled.
    call.once("cancelled", () => {
      if (this.finished) {
        return;
      }
      this.finished = true;
      const reason = this.cancellationReason(deadline);
      this.context.cancel(reason);
      this.trace.end(reason);
      this.recordCall(reason.code);
    });
  }

  /** Records the finished call: the server metrics, then the call's log line (onCallEnd). */
  private recordCall(code: number): void {
    const durationMs = performance.now() - this.started;
    recordServerCall(this.path, code, durationMs / 1000);
    const onCallEnd = this.options.onCallEnd;
    if (onCallEnd !== undefined) {
      // Within the call's span, so that a log line written here carries its trace id.
      this.trace.run(() => onCallEnd(this.ctx, code, durationMs));
    }
  }

  /**
   * Runs handler code within the call: inside its server span (calls it makes are children) and
   * with the incoming deadline as the budget of every call it makes.
   */
  within<T>(fn: () => T): T {
    return this.trace.run(() => runWithDeadline(this.ctx.deadline, fn));
  }

  /** True once the final status was handed to grpc-js or the call was cancelled. */
  get done(): boolean {
    return this.finished;
  }

  get signal(): AbortSignal {
    return this.ctx.signal;
  }

  /** Waits for `promise`, or returns CANCELLED as soon as the call is cancelled. */
  untilCancelled<T>(promise: Promise<T>): Promise<T | typeof CANCELLED> {
    if (this.cancelledPromise === undefined) {
      const signal = this.signal;
      this.cancelledPromise = signal.aborted
        ? Promise.resolve(CANCELLED)
        : new Promise((resolve) => signal.addEventListener("abort", () => resolve(CANCELLED), { once: true }));
    }
    return Promise.race([promise, this.cancelledPromise]);
  }

  /** Sends the response headers unless they went out already. */
  sendHeaders(): void {
    if (!this.headersSent && !this.finished) {
      this.headersSent = true;
      this.call.sendMetadata(this.context.headerIfMade ?? NO_METADATA);
    }
  }

  /** Ends the call with OK, after sending `response` when the method answers one message. */
  succeed(response?: Buffer): void {
    if (this.finished) {
      return;
    }
    this.sendHeaders();
    this.finished = true;
    this.trace.end();
    this.recordCall(STATUS_OK);
    this.finisher.ok(response, this.context.trailerIfMade ?? NO_METADATA);
  }

  /**
   * Ends the call with the status for `err`: a ConnectError answers its own status, anything else
   * answers INTERNAL and is reported to `onError`.
   */
  fail(err: unknown): void {
    if (this.finished) {
      return;
    }
    if (!(err instanceof ConnectError) || (err.code as number) === STATUS_OK) {
      this.report(err);
    }
    const result = statusFromError(err, this.path, this.ctx.responseTrailer);
    this.trace.end(err, result.code);
    this.recordCall(result.code);
    this.finishWith(result);
  }

  /** Ends the call with INTERNAL and `message`, reporting it to `onError`. */
  failInternal(message: string): void {
    if (this.finished) {
      return;
    }
    const err = new ConnectError(message, Code.Internal);
    this.report(err);
    this.trace.end(err, Code.Internal);
    this.recordCall(Code.Internal);
    this.finishWith(statusFromError(err, this.path, this.ctx.responseTrailer));
  }

  private finishWith(result: StatusObject): void {
    if (this.context.hasResponseHeader) {
      this.sendHeaders();
    }
    this.finished = true;
    this.finisher.fail(result);
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err, this.ctx);
    } catch {
      // A failing error reporter must not change the call's outcome.
    }
  }

  private cancellationReason(deadline: Date | undefined): ConnectError {
    if (deadline !== undefined && Date.now() + DEADLINE_TOLERANCE_MS >= deadline.getTime()) {
      return new ConnectError(`${this.path}: deadline exceeded`, Code.DeadlineExceeded);
    }
    return new ConnectError(`${this.path}: call cancelled by the client`, Code.Canceled);
  }
}

function toDate(deadline: Date | number): Date | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}
