// Types of the gRPC binding, derived from protobuf-es service descriptors so that a handler or a
// request of the wrong shape is a compile error.

import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { ChannelCredentials, ChannelOptions, Client as GrpcClient, Metadata } from "@grpc/grpc-js";
import type { TargetPolicy } from "../resilience/policy.js";

// ---------------------------------------------------------------------------------------------
// Server side

/** What a handler knows about the call it serves. */
export interface HandlerContext {
  readonly service: DescService;
  readonly method: DescMethod;
  /** `/package.Service/Method` */
  readonly path: string;
  /** Address of the caller, e.g. `127.0.0.1:53012`. */
  readonly peer: string;
  /** Request metadata (headers) sent by the caller. */
  readonly metadata: Metadata;
  /** When the caller stops waiting; undefined when the call has no deadline. */
  readonly deadline: Date | undefined;
  /** Milliseconds left until the deadline (may be negative); undefined without a deadline. */
  timeRemainingMs(): number | undefined;
  /**
   * Fires when the caller cancels, the deadline passes, or the server shuts down. Its reason is a
   * ConnectError (Code.Canceled or Code.DeadlineExceeded).
   */
  readonly signal: AbortSignal;
  /** Response headers; sent with the first response message (later changes are not sent). */
  readonly responseHeader: Metadata;
  /** Response trailers; sent with the final status, success or error. */
  readonly responseTrailer: Metadata;
}

export type UnaryImpl<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: HandlerContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

export type ServerStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;

export type ClientStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  ctx: HandlerContext,
) => Promise<MessageInitShape<O>>;

export type BidiStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  ctx: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;

/** Handler of a method whose kind is not known statically (an untyped DescService). */
export type UntypedMethodImpl = (request: never, ctx: HandlerContext) => unknown;

/** The handler shape for one method, chosen by its kind. */
export type MethodImpl<M extends DescMethod> = M extends { readonly methodKind: "unary" }
  ? UnaryImpl<M["input"], M["output"]>
  : M extends { readonly methodKind: "server_streaming" }
    ? ServerStreamingImpl<M["input"], M["output"]>
    : M extends { readonly methodKind: "client_streaming" }
      ? ClientStreamingImpl<M["input"], M["output"]>
      : M extends { readonly methodKind: "bidi_streaming" }
        ? BidiStreamingImpl<M["input"], M["output"]>
        : UntypedMethodImpl;

/** One handler per method of the service, keyed by the method's localName. */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: MethodImpl<S["method"][K]>;
};

export interface AddServiceOptions {
  /**
   * Called for every failure that is not a ConnectError thrown on purpose: a handler that throws or
   * rejects with another value, or returns a value that is not a valid response. The client only
   * gets INTERNAL with a short message; log the full error here.
   */
  readonly onError?: (error: unknown, ctx: HandlerContext) => void;
  /** The serving service's name, for its spans (tracing) when several share a process. */
  readonly serviceName?: string;
  /** Called once per call when its status is sent (or it is cancelled): the code and duration. */
  readonly onCallEnd?: (ctx: HandlerContext, code: number, durationMs: number) => void;
}

// ---------------------------------------------------------------------------------------------
// Client side

export interface ClientOptions {
  /**
   * `host:port`, a comma-separated list of instances (`127.0.0.1:7055,127.0.0.1:7155`), or any
   * grpc-js target such as `dns:///drone-scheduler:7051`.
   */
  readonly address: string;
  /** Defaults to plaintext (insecure) credentials. */
  readonly credentials?: ChannelCredentials;
  readonly channelOptions?: ChannelOptions;
  /** Timeout applied to calls that set neither `timeoutMs` nor `deadline`. */
  readonly defaultTimeoutMs?: number;
  /**
   * Deadlines, retries, circuit breaker and bulkhead of the target (lib/resilience), shared by
   * every client of the same address: `policies.forTarget(address)`. Without it, calls get only
   * the deadline of their options (capped by the incoming budget).
   */
  readonly policy?: TargetPolicy;
  /** The target's name in metrics and spans (e.g. "delivery"); default the address. */
  readonly target?: string;
  /** False: no span and no metrics for this client's calls (probes). Default true. */
  readonly observe?: boolean;
}

export interface CallOptions {
  /** Time allowed for the call; the earlier of this and `deadline` applies. */
  readonly timeoutMs?: number;
  readonly deadline?: Date;
  /** Request metadata. Keys ending in `-bin` carry binary values (strings are UTF-8 encoded). */
  readonly metadata?: Record<string, string> | Metadata;
  /** Aborting cancels the call; it then fails with CANCELLED. */
  readonly signal?: AbortSignal;
}

export type UnaryFn<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options?: CallOptions,
) => Promise<MessageShape<O>>;

export type ServerStreamingFn<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options?: CallOptions,
) => AsyncIterable<MessageShape<O>>;

export type ClientStreamingFn<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
  options?: CallOptions,
) => Promise<MessageShape<O>>;

export type BidiStreamingFn<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
  options?: CallOptions,
) => AsyncIterable<MessageShape<O>>;

/** Call function of a method whose kind is not known statically (an untyped DescService). */
export type UntypedMethodFn = (request: unknown, options?: CallOptions) => unknown;

/** The call function for one method, chosen by its kind. */
export type MethodFn<M extends DescMethod> = M extends { readonly methodKind: "unary" }
  ? UnaryFn<M["input"], M["output"]>
  : M extends { readonly methodKind: "server_streaming" }
    ? ServerStreamingFn<M["input"], M["output"]>
    : M extends { readonly methodKind: "client_streaming" }
      ? ClientStreamingFn<M["input"], M["output"]>
      : M extends { readonly methodKind: "bidi_streaming" }
        ? BidiStreamingFn<M["input"], M["output"]>
        : UntypedMethodFn;

/** Members every client has besides its RPC methods. No service may use these method names. */
export interface ClientControls {
  /** Closes the channel; calls in flight fail, later calls fail with UNAVAILABLE. */
  close(): void;
  /** Resolves when the channel is connected; rejects when `deadline` passes first. */
  waitForReady(deadline: Date | number): Promise<void>;
  /** The underlying grpc-js client, for channel state and connectivity. */
  readonly grpcClient: GrpcClient;
}

/** A typed client: one call function per method, keyed by the method's localName. */
export type Client<S extends DescService> = {
  readonly [K in keyof S["method"]]: MethodFn<S["method"][K]>;
} & ClientControls;
