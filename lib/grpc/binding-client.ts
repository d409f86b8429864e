// The single factory for gRPC clients of the platform: typed call functions from a protobuf-es
// service descriptor over one grpc-js Client. Deadlines, retries, circuit breaking, credentials and
// tracing belong here so that every client gets them.

import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import {
  Client as GrpcClient,
  Metadata,
  credentials,
  status,
  type CallOptions as GrpcCallOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
} from "@grpc/grpc-js";
import { decoderFor, encodeMessage, methodPath, passThrough } from "./codec.js";
import { RpcError } from "./errors.js";
import { rpcErrorFromCallError } from "./status.js";
import { readStream } from "./stream-reader.js";
import type { CallOptions, Client, ClientOptions } from "./types.js";

/** Names of the members every client has; a service method with one of these names is refused. */
export const CLIENT_CONTROL_NAMES: readonly string[] = ["close", "waitForReady", "grpcClient"];

/** Creates a typed client of `service`, with one call function per method (keyed by localName). */
export function createClient<S extends DescService>(service: S, options: ClientOptions): Client<S> {
  const grpcClient = new GrpcClient(
    options.address,
    options.credentials ?? credentials.createInsecure(),
    options.channelOptions ?? {},
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
  private readonly path: string;
  private readonly input: DescMessage;
  private readonly decode: (bytes: Buffer) => unknown;

  constructor(
    private readonly grpcClient: GrpcClient,
    method: DescMethod,
    private readonly options: ClientOptions,
  ) {
    this.path = methodPath(method);
    this.input = method.input;
    this.decode = decoderFor(method.output);
  }

  unary(request: unknown, callOptions: CallOptions | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const bytes = this.encodeRequest(request, undefined);
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
        this.metadataOf(callOptions),
        this.grpcCallOptions(callOptions),
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
    const call = this.grpcClient.makeServerStreamRequest(
      this.path,
      passThrough,
      this.decode,
      bytes,
      this.metadataOf(callOptions),
      this.grpcCallOptions(callOptions),
    );
    yield* this.readResponses(call, signal);
  }

  clientStreaming(requests: AnyIterable, callOptions: CallOptions | undefined): Promise<unknown> {
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
        this.metadataOf(callOptions),
        this.grpcCallOptions(callOptions),
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
    const call = this.grpcClient.makeBidiStreamRequest(
      this.path,
      passThrough,
      this.decode,
      this.metadataOf(callOptions),
      this.grpcCallOptions(callOptions),
    );
    const done = deferred();
    let writeError: { value: unknown } | undefined;
    this.writeRequests(call, requests, done).catch((err: unknown) => {
      writeError ??= { value: err };
      call.cancel();
    });
    try {
      yield* this.readResponses(call, signal);
    } catch (err) {
      throw writeError === undefined ? err : writeError.value;
    } finally {
      done.resolve();
    }
  }

  /** Yields the responses of a streaming call; stopping early cancels the call. */
  private async *readResponses(
    call: ClientReadableStream<unknown> | ClientDuplexStream<Buffer, unknown>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<unknown, void, undefined> {
    const unlink = linkSignal(signal, () => call.cancel());
    const reader = readStream<unknown>(call, {
      closedError: () => new RpcError(status.CANCELLED, `${this.path}: stream closed before the call ended`),
      mapError: (err) => this.callError(err, signal),
    });
    let ended = false;
    try {
      for await (const response of reader) {
        yield response;
      }
      ended = true;
    } catch (err) {
      ended = true;
      throw err;
    } finally {
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
      throw new RpcError(status.INTERNAL, `${this.path}: invalid request ${this.input.typeName}${which}: ${encoded.reason}`);
    }
    return encoded.bytes;
  }

  private metadataOf(callOptions: CallOptions | undefined): Metadata {
    try {
      return toMetadata(callOptions?.metadata);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new RpcError(status.INTERNAL, `${this.path}: invalid request metadata: ${reason}`, { cause: err });
    }
  }

  private grpcCallOptions(callOptions: CallOptions | undefined): GrpcCallOptions {
    const deadline = deadlineOf(callOptions, this.options.defaultTimeoutMs);
    return deadline === undefined ? {} : { deadline };
  }

  private callError(err: unknown, signal: AbortSignal | undefined): RpcError {
    const rpcError = rpcErrorFromCallError(err, this.path);
    if (signal?.aborted === true && rpcError.code === status.CANCELLED) {
      return abortedError(this.path, signal);
    }
    return rpcError;
  }
}

/** The earlier of the explicit deadline and the timeout; the default timeout when neither is set. */
function deadlineOf(callOptions: CallOptions | undefined, defaultTimeoutMs: number | undefined): Date | undefined {
  const candidates: number[] = [];
  if (callOptions?.deadline !== undefined) {
    candidates.push(callOptions.deadline.getTime());
  }
  if (callOptions?.timeoutMs !== undefined) {
    candidates.push(Date.now() + callOptions.timeoutMs);
  }
  if (candidates.length === 0 && defaultTimeoutMs !== undefined) {
    candidates.push(Date.now() + defaultTimeoutMs);
  }
  return candidates.length === 0 ? undefined : new Date(Math.min(...candidates));
}

function toMetadata(metadata: Record<string, string> | Metadata | undefined): Metadata {
  if (metadata instanceof Metadata) {
    return metadata.clone();
  }
  const result = new Metadata();
  for (const [key, value] of Object.entries(metadata ?? {})) {
    result.set(key, key.endsWith("-bin") ? Buffer.from(value) : value);
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

function abortedError(path: string, signal: AbortSignal): RpcError {
  return new RpcError(status.CANCELLED, `${path}: call cancelled by the caller`, { cause: signal.reason });
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
