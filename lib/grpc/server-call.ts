// The life of one server call: its HandlerContext, cancellation, and the single final status.

import type { DescMethod } from "@bufbuild/protobuf";
import { Metadata, status, type ServerUnaryCall, type StatusObject } from "@grpc/grpc-js";
import { methodPath } from "./codec.js";
import { RpcError } from "./errors.js";
import { statusFromError } from "./status.js";
import { startServerCallTimer } from "../observability/metrics.js";
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

// Timers may fire a little before the clock reaches the deadline.
const DEADLINE_TOLERANCE_MS = 5;

export class CallScope {
  readonly ctx: HandlerContext;
  readonly path: string;
  readonly trace: ServerSpan;
  private readonly recordCall: (code: string | number) => void;
  private readonly controller = new AbortController();
  private readonly cancelledPromise: Promise<typeof CANCELLED>;
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
    const timer = startServerCallTimer(this.path);
    const started = performance.now();
    this.recordCall = (code) => {
      timer(code);
      // Within the call's span, so that a log line written here carries its trace id.
      const durationMs = performance.now() - started;
      this.trace.run(() => this.options.onCallEnd?.(this.ctx, typeof code === "number" ? code : status.UNKNOWN, durationMs));
    };
    const deadline = toDate(call.getDeadline());
    this.ctx = {
      service: method.parent,
      method,
      path: this.path,
      peer: call.getPeer(),
      metadata: call.metadata,
      deadline,
      timeRemainingMs: () => (deadline === undefined ? undefined : deadline.getTime() - Date.now()),
      signal: this.controller.signal,
      responseHeader: new Metadata(),
      responseTrailer: new Metadata(),
    };
    this.cancelledPromise = new Promise((resolve) => {
      this.controller.signal.addEventListener("abort", () => resolve(CANCELLED), { once: true });
    });
    // grpc-js also emits 'cancelled' after a status was sent; only an unfinished call is cancelled.
    call.once("cancelled", () => {
      if (this.finished) {
        return;
      }
      this.finished = true;
      const reason = this.cancellationReason(deadline);
      this.controller.abort(reason);
      this.trace.end(reason);
      this.recordCall(reason.code);
    });
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
    return this.controller.signal;
  }

  /** Waits for `promise`, or returns CANCELLED as soon as the call is cancelled. */
  untilCancelled<T>(promise: Promise<T>): Promise<T | typeof CANCELLED> {
    return Promise.race([promise, this.cancelledPromise]);
  }

  /** Sends the response headers unless they went out already. */
  sendHeaders(): void {
    if (!this.headersSent && !this.finished) {
      this.headersSent = true;
      this.call.sendMetadata(this.ctx.responseHeader);
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
    this.recordCall(status.OK);
    this.finisher.ok(response, this.ctx.responseTrailer);
  }

  /**
   * Ends the call with the status for `err`: an RpcError answers its own status, anything else
   * answers INTERNAL and is reported to `onError`.
   */
  fail(err: unknown): void {
    if (this.finished) {
      return;
    }
    if (!(err instanceof RpcError) || err.code === status.OK) {
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
    const err = new RpcError(status.INTERNAL, message);
    this.report(err);
    this.trace.end(err, status.INTERNAL);
    this.recordCall(status.INTERNAL);
    this.finishWith(statusFromError(err, this.path, this.ctx.responseTrailer));
  }

  private finishWith(result: StatusObject): void {
    if (Object.keys(this.ctx.responseHeader.getMap()).length > 0) {
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

  private cancellationReason(deadline: Date | undefined): RpcError {
    if (deadline !== undefined && Date.now() + DEADLINE_TOLERANCE_MS >= deadline.getTime()) {
      return new RpcError(status.DEADLINE_EXCEEDED, `${this.path}: deadline exceeded`);
    }
    return new RpcError(status.CANCELLED, `${this.path}: call cancelled by the client`);
  }
}

function toDate(deadline: Date | number): Date | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}
