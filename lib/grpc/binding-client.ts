// The single factory for gRPC clients of the platform: typed call functions from a protobuf-es
// service descriptor over one grpc-js Client. Deadlines, retries, circuit breaking, credentials and
// tracing belong here so that every client gets them.

import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Client as GrpcClient,
  Metadata,
  credentials,
  type CallOptions as GrpcCallOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
} from "@grpc/grpc-js";
import { decoderFor, encodeMessage, methodPath, passThrough } from "./codec.js";
import { channelTarget } from "./load-balancing.js";
import { startClientCallTimer } from "../observability/metrics.js";
import { startClientSpan, type TraceCarrier } from "../observability/trace-grpc.js";
import { effectiveDeadline } from "../resilience/deadline.js";
import type { StreamAdmission } from "../resilience/policy.js";
import { connectErrorFromCallError } from "./status.js";
import { readStream } from "./stream-reader.js";
import type { CallOptions, Client, ClientOptions } from "./types.js";

/** Names of the members every client has; a service method with one of these names is refused. */
export const CLIENT_CONTROL_NAMES: readonly string[] = ["close", "waitForReady", "grpcClient"];

/**
 * Reconnect backoff of every channel (options may override it). grpc-js's own grows from 1 s to
 * 120 s, so a dependency that was down for a minute and came back stayed unreachable for up to two
 * more minutes; capped, a channel tries again at least every second.
 */
export const RECONNECT_CHANNEL_OPTIONS = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1_000,
} as const;

/**
 * Channel options of every client besides the reconnect backoff: no channelz bookkeeping (per-call
 * counters and traces for a channelz server, which the platform does not run; its metrics and
 * spans are its own).
 */
export const CLIENT_CHANNEL_OPTIONS = {
  ...RECONNECT_CHANNEL_OPTIONS,
  "grpc.enable_channelz": 0,
} as const;

/** Creates a typed client of `service`, with one call function per method (keyed by localName). */
export function createClient<S extends DescService>(service: S, options: ClientOptions): Client<S> {
  const grpcClient = new GrpcClient(
    channelTarget(options.address),
    options.credentials ?? credentials.createInsecure(),
    { ...CLIENT_CHANNEL_OPTIONS, ...options.channelOptions },
  );
  const client: Record<string, unknown> = {
    close: () => grpcClient.close(),
    waitForReady: (deadline: Date | number) =>
      new Promise<void>((resolve, reject) =>
        grpcClient.waitForReady(deadline, (err) => (err === undefined ? resolve() : reject(err))),
      ),
    grpcClient,
  };
  for (const method of service.methods) {
    if (CLIENT_CONTROL_NAMES.includes(method.localName)) {
      grpcClient.close();
      throw new Error(`${methodPath(method)}: the method name "${method.localName}" is reserved by the client`);
    }
    client[method.localName] = callFunction(grpcClient, method, options);
  }
  return client as Client<S>;
}

function callFunction(grpcClient: GrpcClient, method: DescMethod, options: ClientOptions): unknown {
  const call = new MethodCaller(grpcClient, method, options);
  switch (method.methodKind) {
    case "unary":
      return (request: unknown, callOptions?: CallOptions) => call.unary(request, callOptions);
    case "server_streaming":
      return (request: unknown, callOptions?: CallOptions) => call.serverStreaming(request, callOptions);
    case "client_streaming":
      return (requests: AnyIterable, callOptions?: CallOptions) => call.clientStreaming(requests, callOptions);
    case "bidi_streaming":
      return (requests: AnyIterable, callOptions?: CallOptions) => call.bidiStreaming(requests, callOptions);
  }
}

type AnyIterable = AsyncIterable<unknown> | Iterable<unknown>;

class MethodCaller {
  private readonly method: DescMethod;
  private readonly path: string;
  private readonly input: DescMessage;
  private readonly decode: (bytes: Buffer) => unknown;

  constructor(
    private readonly grpcClient: GrpcClient,
    method: DescMethod,
    private readonly options: ClientOptions,
  ) {
    this.method = method;
    this.path = methodPath(method);
    this.input = method.input;
    this.decode = decoderFor(method.output);
  }

  unary(request: unknown, callOptions: CallOptions | undefined): Promise<unknown> {
    let bytes: Buffer;
    try {
      bytes = this.encodeRequest(request, undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.observed((carrier) => {
      const policy = this.options.policy;
      if (policy === undefined) {
        return this.unaryAttempt(bytes, callOptions, this.deadlineOf(callOptions), carrier);
      }
      // A unary call always has a deadline under a policy (its method class's default at least).
      const deadline = policy.deadlineFor(this.method, this.limitsOf(callOptions)) ?? new Date();
      return policy.execute(this.method, (attemptDeadline) => this.unaryAttempt(bytes, callOptions, attemptDeadline, carrier), {
        deadline,
        signal: callOptions?.signal,
      });
    });
  }

  /**
   * Runs a call that ends with one answer as one client span (its trace context goes out in each
   * attempt's metadata) and one metrics record, whatever the number of attempts.
   */
  private observed<T>(call: (carrier: TraceCarrier | undefined) => Promise<T>): Promise<T> {
    const observation = this.startObservation();
    if (observation === undefined) return call(undefined);
    return call(observation.carrier).then(
      (value) => {
        observation.end();
        return value;
      },
      (err: unknown) => {
        observation.end(err);
        throw err;
      },
    );
  }

  /** A client span and a metrics timer for one call; undefined when the client is not observed. */
  private startObservation(): { carrier: TraceCarrier; end(err?: unknown): void } | undefined {
    if (this.options.observe === false) return undefined;
    const target = this.options.target ?? this.options.address;
    const span = startClientSpan(target, this.path);
    const timer = startClientCallTimer(target, this.path);
    let ended = false;
    return {
      carrier: span.carrier,
      end(err?: unknown) {
        if (ended) return;
        ended = true;
        span.end(err);
        timer(err === undefined ? "OK" : err instanceof ConnectError ? err.code : "UNKNOWN");
      },
    };
  }

  /** One attempt of a unary call. */
  private unaryAttempt(
    bytes: Buffer,
    callOptions: CallOptions | undefined,
    deadline: Date | undefined,
    carrier: TraceCarrier | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const signal = callOptions?.signal;
      if (signal?.aborted === true) {
        throw abortedError(this.path, signal);
      }
      let unlink = noop;
      let settled = false;
      const call = this.grpcClient.makeUnaryRequest(
        this.path,
        passThrough,
        this.decode,
        bytes,
        this.metadataOf(callOptions, carrier),
        grpcCallOptions(deadline),
        (err, value) => {
          settled = true;
          unlink();
          if (err === null) {
            resolve(value);
          } else {
            reject(this.callError(err, signal));
          }
        },
      );
      if (!settled) {
        unlink = linkSignal(signal, () => call.cancel());
      }
    });
  }

  async *serverStreaming(request: unknown, callOptions: CallOptions | undefined): AsyncGenerator<unknown, void, undefined> {
    const bytes = this.encodeRequest(request, undefined);
    const signal = callOptions?.signal;
    if (signal?.aborted === true) {
      throw abortedError(this.path, signal);
    }
    const admission = this.admit(callOptions);
    const observation = this.startObservation();
    try {
      const call = this.grpcClient.makeServerStreamRequest(
        this.path,
        passThrough,
        this.decode,
        bytes,
        this.metadataOf(callOptions, observation?.carrier),
        grpcCallOptions(admission === undefined ? this.deadlineOf(callOptions) : admission.deadline),
      );
      yield* this.readResponses(call, signal, admission);
    } catch (err) {
      observation?.end(err);
      throw err;
    } finally {
      observation?.end();
    }
  }

  clientStreaming(requests: AnyIterable, callOptions: CallOptions | undefined): Promise<unknown> {
    return this.observed((carrier) => this.clientStreamingPolicy(requests, callOptions, carrier));
  }

  private clientStreamingPolicy(requests: AnyIterable, callOptions: CallOptions | undefined, carrier: TraceCarrier | undefined): Promise<unknown> {
    const policy = this.options.policy;
    if (policy === undefined) {
      return this.clientStreamingCall(requests, callOptions, this.deadlineOf(callOptions), carrier);
    }
    return (async () => {
      const deadline = policy.deadlineFor(this.method, this.limitsOf(callOptions));
      if (deadline === undefined) {
        // No limit at all: admission only, like the other streams.
        const admission = policy.admit(this.method);
        try {
          const response = await this.clientStreamingCall(requests, callOptions, undefined, carrier);
          admission.finished();
          return response;
        } catch (err) {
          admission.finished(err);
          throw err;
        }
      }
      return policy.execute(
        this.method,
        (attemptDeadline) => this.clientStreamingCall(requests, callOptions, attemptDeadline, carrier),
        { deadline, signal: callOptions?.signal },
      );
    })();
  }

  private clientStreamingCall(
    requests: AnyIterable,
    callOptions: CallOptions | undefined,
    deadline: Date | undefined,
    carrier: TraceCarrier | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const signal = callOptions?.signal;
      if (signal?.aborted === true) {
        throw abortedError(this.path, signal);
      }
      let unlink = noop;
      let settled = false;
      const done = deferred();
      const settle = (outcome: () => void): void => {
        if (!settled) {
          settled = true;
          unlink();
          done.resolve();
          outcome();
        }
      };
      const call = this.grpcClient.makeClientStreamRequest(
        this.path,
        passThrough,
        this.decode,
        this.metadataOf(callOptions, carrier),
        grpcCallOptions(deadline),
        (err, value) => settle(() => (err === null ? resolve(value) : reject(this.callError(err, signal)))),
      );
      call.on("error", noop); // failures arrive through the callback
      if (!settled) {
        unlink = linkSignal(signal, () => call.cancel());
      }
      this.writeRequests(call, requests, done).catch((err: unknown) => {
        settle(() => reject(err));
        call.cancel();
      });
    });
  }

  async *bidiStreaming(requests: AnyIterable, callOptions: CallOptions | undefined): AsyncGenerator<unknown, void, undefined> {
    const signal = callOptions?.signal;
    if (signal?.aborted === true) {
      throw abortedError(this.path, signal);
    }
    const admission = this.admit(callOptions);
    const observation = this.startObservation();
    const done = deferred();
    try {
      const call = this.grpcClient.makeBidiStreamRequest(
        this.path,
        passThrough,
        this.decode,
        this.metadataOf(callOptions, observation?.carrier),
        grpcCallOptions(admission === undefined ? this.deadlineOf(callOptions) : admission.deadline),
      );
      let writeError: { value: unknown } | undefined;
      this.writeRequests(call, requests, done).catch((err: unknown) => {
        writeError ??= { value: err };
        call.cancel();
      });
      try {
        yield* this.readResponses(call, signal, admission);
      } catch (err) {
        throw writeError === undefined ? err : writeError.value;
      }
    } catch (err) {
      observation?.end(err);
      throw err;
    } finally {
      done.resolve();
      observation?.end();
    }
  }

  /** Yields the responses of a streaming call; stopping early cancels the call. */
  private async *readResponses(
    call: ClientReadableStream<unknown> | ClientDuplexStream<Buffer, unknown>,
    signal: AbortSignal | undefined,
    admission: StreamAdmission | undefined,
  ): AsyncGenerator<unknown, void, undefined> {
    if (admission !== undefined) {
      call.once("metadata", () => admission.established());
    }
    const unlink = linkSignal(signal, () => call.cancel());
    const reader = readStream<unknown>(call, {
      closedError: () => new ConnectError(`${this.path}: stream closed before the call ended`, Code.Canceled),
      mapError: (err) => this.callError(err, signal),
    });
    let ended = false;
    try {
      for await (const response of reader) {
        admission?.established();
        yield response;
      }
      ended = true;
      admission?.finished();
    } catch (err) {
      ended = true;
      admission?.finished(err);
      throw err;
    } finally {
      admission?.finished();
      unlink();
      if (!ended) {
        call.cancel();
      }
    }
  }

  /** Writes the requests of a client-streaming or bidi call, then half-closes it. */
  private async writeRequests(
    call: ClientWritableStream<Buffer> | ClientDuplexStream<Buffer, unknown>,
    requests: AnyIterable,
    done: Deferred,
  ): Promise<void> {
    let index = 0;
    for await (const request of requests) {
      if (done.settled) {
        return;
      }
      const bytes = this.encodeRequest(request, ++index);
      if (!call.write(bytes)) {
        const drained = new Promise<void>((resolve) => call.once("drain", () => resolve()));
        await Promise.race([drained, done.promise]);
      }
    }
    if (!done.settled) {
      call.end();
    }
  }

  private encodeRequest(request: unknown, index: number | undefined): Buffer {
    const encoded = encodeMessage(this.input, request);
    if (!encoded.ok) {
      const which = index === undefined ? "" : ` (request #${index})`;
      throw new ConnectError(`${this.path}: invalid request ${this.input.typeName}${which}: ${encoded.reason}`, Code.Internal);
    }
    return encoded.bytes;
  }

  private metadataOf(callOptions: CallOptions | undefined, carrier?: TraceCarrier): Metadata {
    try {
      const metadata = toMetadata(callOptions?.metadata);
      if (carrier !== undefined) {
        for (const key in carrier) metadata.set(key, carrier[key]!);
      }
      return metadata;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConnectError(`${this.path}: invalid request metadata: ${reason}`, Code.Internal, undefined, undefined, err);
    }
  }

  /** The caller's limits, with the client's default timeout when the caller set neither. */
  private limitsOf(callOptions: CallOptions | undefined): { deadline?: Date | undefined; timeoutMs?: number | undefined } {
    const deadline = callOptions?.deadline;
    const timeoutMs = callOptions?.timeoutMs ?? (deadline === undefined ? this.options.defaultTimeoutMs : undefined);
    return { deadline, timeoutMs };
  }

  /** The deadline of a call without a policy: the caller's limits, capped by the incoming budget. */
  private deadlineOf(callOptions: CallOptions | undefined): Date | undefined {
    const limits = this.limitsOf(callOptions);
    return effectiveDeadline({ callDeadline: limits.deadline, timeoutMs: limits.timeoutMs });
  }

  /** Admits a server- or bidi-streaming call through the policy; undefined without one. */
  private admit(callOptions: CallOptions | undefined): StreamAdmission | undefined {
    const policy = this.options.policy;
    return policy?.admit(this.method, { deadline: policy.deadlineFor(this.method, this.limitsOf(callOptions)) });
  }

  private callError(err: unknown, signal: AbortSignal | undefined): ConnectError {
    const error = connectErrorFromCallError(err, this.path);
    if (signal?.aborted === true && error.code === Code.Canceled) {
      return abortedError(this.path, signal);
    }
    return error;
  }
}

function grpcCallOptions(deadline: Date | undefined): GrpcCallOptions {
  return deadline === undefined ? {} : { deadline };
}

function toMetadata(metadata: Record<string, string> | Metadata | undefined): Metadata {
  if (metadata instanceof Metadata) {
    return metadata.clone();
  }
  const result = new Metadata();
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      result.set(key, key.endsWith("-bin") ? Buffer.from(value) : value);
    }
  }
  return result;
}

function linkSignal(signal: AbortSignal | undefined, cancel: () => void): () => void {
  if (signal === undefined) {
    return noop;
  }
  signal.addEventListener("abort", cancel, { once: true });
  return () => signal.removeEventListener("abort", cancel);
}

function abortedError(path: string, signal: AbortSignal): ConnectError {
  return new ConnectError(`${path}: call cancelled by the caller`, Code.Canceled, undefined, undefined, signal.reason);
}

interface Deferred {
  readonly promise: Promise<void>;
  readonly settled: boolean;
  resolve(): void;
}

function deferred(): Deferred {
  let resolvePromise = noop;
  const promise = new Promise<void>((resolve) => (resolvePromise = resolve));
  const result = {
    promise,
    settled: false,
    resolve: () => {
      result.settled = true;
      resolvePromise();
    },
  };
  return result;
}

function noop(): void {}
