// Typed gRPC runtime binding for protobuf-es service descriptors: the server side (grpc-js service
// definition and handler registration) and the client factory.

export { addService, createServiceDefinition } from "./binding-server.js";
export { CLIENT_CONTROL_NAMES, createClient } from "./binding-client.js";
export type {
  AddServiceOptions,
  BidiStreamingFn,
  BidiStreamingImpl,
  CallOptions,
  Client,
  ClientControls,
  ClientOptions,
  ClientStreamingFn,
  ClientStreamingImpl,
  HandlerContext,
  MethodFn,
  MethodImpl,
  ServerStreamingFn,
  ServerStreamingImpl,
  ServiceImpl,
  UnaryFn,
  UnaryImpl,
  UntypedMethodFn,
  UntypedMethodImpl,
} from "./types.js";
