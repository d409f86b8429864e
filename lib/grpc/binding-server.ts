// Serves a protobuf-es service descriptor on a grpc-js Server with typed handlers.
//
// Messages are encoded inside the binding, not by grpc-js: the registered serializer passes bytes
// through, so a handler's invalid response ends the call with INTERNAL and a message naming the
// method, and a request that fails to decode answers INVALID_ARGUMENT.

import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type MethodDefinition,
  type Server,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
  type sendUnaryData,
  type handleBidiStreamingCall,
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
} from "@grpc/grpc-js";
import { DecodeFailure, decodeMessage, decoderFor, encodeMessage, methodPath, serializerFor } from "./codec.js";
import { CANCELLED, CallScope, type Finisher } from "./server-call.js";
import { readStream } from "./stream-reader.js";
import { withRequestRules } from "./request-rules.js";
import type { AddServiceOptions, ServiceImpl } from "./types.js";
import { describe } from "./validate.js";

/**
 * The grpc-js definition of a service, keyed by method localName. Requests decode to protobuf-es
 * messages (or a DecodeFailure, answered by the binding); responses already encoded by the binding
 * pass through as they are.
 */
export function createServiceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: methodPath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializerFor(method.input),
      requestDeserialize: (bytes: Buffer) => decodeMessage(method.input, bytes),
      responseSerialize: serializerFor(method.output),
      responseDeserialize: decoderFor(method.output),
    };
  }
  return definition;
}

/**
 * Registers `impl` for `service` on `server`. Every method needs a handler (keyed by localName);
 * a method left out at runtime answers UNIMPLEMENTED.
 */
export function addService<S extends DescService>(
  server: Server,
  service: S,
  impl: ServiceImpl<S>,
  options: AddServiceOptions = {},
): void {
  const handlers: UntypedServiceImplementation = {};
  const record = impl as unknown as Record<string, unknown>;
  for (const method of service.methods) {
    const fn = record[method.localName];
    if (fn === undefined) {
      continue; // grpc-js answers UNIMPLEMENTED
    }
    if (typeof fn !== "function") {
      throw new TypeError(`${methodPath(method)}: the handler "${method.localName}" is not a function`);
    }
    const handler = (...args: unknown[]): unknown => (fn as (...a: unknown[]) => unknown).apply(impl, args);
    // The contract's field rules are checked before the handler runs (request-rules.ts).
    handlers[method.localName] = bindMethod(method, withRequestRules(method, handler), options);
  }
  server.addService(createServiceDefinition(service), handlers);
}

type AnyHandler = (...args: unknown[]) => unknown;

function bindMethod(method: DescMethod, handler: AnyHandler, options: AddServiceOptions): UntypedHandleCall {
  switch (method.methodKind) {
    case "unary":
      return unaryCall(method, handler, options);
    case "server_streaming":
      return serverStreamingCall(method, handler, options);
    case "client_streaming":
      return clientStreamingCall(method, handler, options);
    case "bidi_streaming":
      return bidiStreamingCall(method, handler, options);
  }
}

function unaryCall(method: DescMethod, handler: AnyHandler, options: AddServiceOptions): handleUnaryCall<unknown, Buffer> {
  return (call: ServerUnaryCall<unknown, Buffer>, callback) => {
    const scope = new CallScope(call, method, unaryFinisher(callback), options);
    const request = call.request;
    if (request instanceof DecodeFailure) {
      scope.fail(invalidRequest(scope.path, request));
      return;
    }
    // Within the call's span, with the incoming deadline as the budget of every call it makes.
    scope.within(() => invoke(() => handler(request, scope.ctx))).then(
      (response) => respond(scope, method.output, response),
      (err: unknown) => scope.fail(err),
    );
  };
}

function clientStreamingCall(
  method: DescMethod,
  handler: AnyHandler,
  options: AddServiceOptions,
): handleClientStreamingCall<unknown, Buffer> {
  return (call: ServerReadableStream<unknown, Buffer>, callback) => {
    const scope = new CallScope(call, method, unaryFinisher(callback), options);
    scope.within(() => invoke(() => handler(requestsOf(call, scope), scope.ctx))).then(
      (response) => respond(scope, method.output, response),
      (err: unknown) => scope.fail(err),
    );
  };
}

function serverStreamingCall(
  method: DescMethod,
  handler: AnyHandler,
  options: AddServiceOptions,
): handleServerStreamingCall<unknown, Buffer> {
  return (call: ServerWritableStream<unknown, Buffer>) => {
    const scope = new CallScope(call, method, streamFinisher(call), options);
    const request = call.request;
    if (request instanceof DecodeFailure) {
      scope.fail(invalidRequest(scope.path, request));
      return;
    }
    // The handler and the iteration of its responses run within the incoming deadline's budget.
    scope.within(() => {
      let responses: unknown;
      try {
        responses = handler(request, scope.ctx);
      } catch (err) {
        scope.fail(err);
        return;
      }
      void writeResponses(call, scope, method.output, responses);
    });
  };
}

function bidiStreamingCall(
  method: DescMethod,
  handler: AnyHandler,
  options: AddServiceOptions,
): handleBidiStreamingCall<unknown, Buffer> {
  return (call: ServerDuplexStream<unknown, Buffer>) => {
    const scope = new CallScope(call, method, streamFinisher(call), options);
    scope.within(() => {
      let responses: unknown;
      try {
        responses = handler(requestsOf(call, scope), scope.ctx);
      } catch (err) {
        scope.fail(err);
        return;
      }
      void writeResponses(call, scope, method.output, responses);
    });
  };
}

function unaryFinisher(callback: sendUnaryData<Buffer>): Finisher {
  return {
    ok: (response, trailer) => callback(null, response ?? Buffer.alloc(0), trailer),
    fail: (result) => callback(result),
  };
}

function streamFinisher(call: ServerWritableStream<unknown, Buffer> | ServerDuplexStream<unknown, Buffer>): Finisher {
  return {
    ok: (_response, trailer) => call.end(trailer),
    // grpc-js turns an 'error' event on a server stream into the call's status.
    fail: (result) => call.emit("error", result),
  };
}

/** Runs a handler so that a synchronous throw becomes a rejection. */
function invoke(fn: () => unknown): Promise<unknown> {
  return new Promise((resolve) => resolve(fn()));
}

function respond(scope: CallScope, output: DescMessage, response: unknown): void {
  if (scope.done) {
    return;
  }
  const encoded = encodeMessage(output, response);
  if (!encoded.ok) {
    scope.failInternal(`${scope.path}: handler returned an invalid ${output.typeName}: ${encoded.reason}`);
    return;
  }
  scope.succeed(encoded.bytes);
}

/** Writes what a streaming handler yields, honouring flow control, then ends the call. */
async function writeResponses(
  call: ServerWritableStream<unknown, Buffer> | ServerDuplexStream<unknown, Buffer>,
  scope: CallScope,
  output: DescMessage,
  responses: unknown,
): Promise<void> {
  const iterator = asyncIteratorOf(responses);
  if (iterator === undefined) {
    scope.failInternal(`${scope.path}: handler returned ${describe(responses)} instead of an async iterable`);
    return;
  }
  let exhausted = false;
  try {
    for (let index = 0; ; index++) {
      const next = await scope.untilCancelled(Promise.resolve(iterator.next()));
      if (next === CANCELLED || scope.done) {
        return;
      }
      if (next.done === true) {
        exhausted = true;
        scope.succeed();
        return;
      }
      const encoded = encodeMessage(output, next.value);
      if (!encoded.ok) {
        scope.failInternal(
          `${scope.path}: handler yielded an invalid ${output.typeName} (response #${index + 1}): ${encoded.reason}`,
        );
        return;
      }
      scope.sendHeaders();
      if (!call.write(encoded.bytes)) {
        const drained = new Promise<void>((resolve) => call.once("drain", () => resolve()));
        if ((await scope.untilCancelled(drained)) === CANCELLED) {
          return;
        }
      }
    }
  } catch (err) {
    exhausted = true; // a generator that threw is finished
    scope.fail(err);
  } finally {
    if (!exhausted) {
      // Let the handler run its cleanup (finally blocks); it may still be busy, so do not wait.
      Promise.resolve()
        .then(() => iterator.return?.())
        .catch(() => undefined);
    }
  }
}

function asyncIteratorOf(value: unknown): AsyncIterator<unknown> | Iterator<unknown> | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const asyncFactory = (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator];
  if (typeof asyncFactory === "function") {
    return (asyncFactory as () => AsyncIterator<unknown>).call(value);
  }
  // Tolerated at runtime although the types ask for an AsyncIterable.
  const syncFactory = (value as { [Symbol.iterator]?: unknown })[Symbol.iterator];
  if (typeof syncFactory === "function") {
    return (syncFactory as () => Iterator<unknown>).call(value);
  }
  return undefined;
}

/**
 * The requests of a client-streaming or bidi call, as the handler reads them. A cancelled call
 * makes the iteration throw the signal's reason. Note that a grpc-js client cancels by half-closing
 * and then resetting the stream, so the server may see the request stream end normally just before
 * the cancellation arrives (a few milliseconds later, through `ctx.signal`).
 */
async function* requestsOf(
  call: ServerReadableStream<unknown, Buffer> | ServerDuplexStream<unknown, Buffer>,
  scope: CallScope,
): AsyncGenerator<unknown, void, undefined> {
  // Reading fails only when the call is over: cancelled (the signal's reason) or already answered.
  const ended = (): unknown => scope.signal.reason ?? new ConnectError(`${scope.path}: the call has ended`, Code.Canceled);
  const reader = readStream<unknown>(call, { closedError: ended, mapError: ended });
  for await (const request of reader) {
    if (request instanceof DecodeFailure) {
      const err = invalidRequest(scope.path, request);
      scope.fail(err);
      throw err;
    }
    yield request;
  }
}

function invalidRequest(path: string, failure: DecodeFailure): ConnectError {
  return new ConnectError(`${path}: request is not a valid ${failure.typeName}: ${failure.reason}`, Code.InvalidArgument);
}
