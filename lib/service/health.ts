/**
 * The standard `grpc.health.v1.Health` service (Check, Watch, List) from the generated
 * descriptors: the answers grpc-health-check gives, without loading a .proto parser at start-up
 * (protobufjs and proto-loader cost every service several MB of memory).
 *
 * Check answers the status of a known service ("" is the whole server) and NOT_FOUND for any
 * other; Watch sends the current status (SERVICE_UNKNOWN for an unknown service) and then every
 * change until the caller cancels; List answers every status (RESOURCE_EXHAUSTED beyond 100).
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
  HealthListRequestSchema,
  HealthListResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListRequest,
  type HealthListResponse,
} from "../../gen/grpc/health/v1/health_pb.js";

/** The statuses a service reports (the names grpc-health-check takes). */
export type ServingStatus = "SERVING" | "NOT_SERVING" | "UNKNOWN";

/** List answers RESOURCE_EXHAUSTED beyond this many services, as the specification suggests. */
const LIST_LIMIT = 100;

/** A grpc-js method definition whose messages are `input` and `output`, encoded by protobuf-es. */
export function protoMethod<I extends DescMessage, O extends DescMessage>(
  path: string,
  input: I,
  output: O,
  streams: { request?: boolean; response?: boolean } = {},
): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  return {
    path,
    requestStream: streams.request ?? false,
    responseStream: streams.response ?? false,
    requestSerialize: (value) => Buffer.from(toBinary(input, value)),
    requestDeserialize: (bytes) => fromBinary(input, bytes),
    responseSerialize: (value) => Buffer.from(toBinary(output, value)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}

const path = (method: { readonly name: string }): string => `/${Health.typeName}/${method.name}`;

const response = (status: Status): HealthCheckResponse => create(HealthCheckResponseSchema, { status });

/** The health of a server's services; `addToServer` serves it. */
export class HealthService {
  private readonly statuses = new Map<string, Status>();
  private readonly watchers = new Map<string, Set<(status: Status) => void>>();

  constructor(initial: Readonly<Record<string, ServingStatus>> = {}) {
    for (const [service, status] of Object.entries(initial)) this.statuses.set(service, Status[status]);
  }

  /** Sets a service's status ("" is the whole server) and tells its watchers. */
  setStatus(service: string, status: ServingStatus): void {
    const value = Status[status];
    this.statuses.set(service, value);
    for (const watcher of this.watchers.get(service) ?? []) watcher(value);
  }

  addToServer(server: grpc.Server): void {
    const check = protoMethod(path(Health.method.check), HealthCheckRequestSchema, HealthCheckResponseSchema);
    const watch = protoMethod(path(Health.method.watch), HealthCheckRequestSchema, HealthCheckResponseSchema, { response: true });
    const list = protoMethod(path(Health.method.list), HealthListRequestSchema, HealthListResponseSchema);
    server.addService(
      { check, watch, list },
      {
        check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
          const status = this.statuses.get(call.request.service);
          if (status === undefined) {
            callback({ code: Code.NotFound as number, details: `Health status unknown for service ${call.request.service}` });
          } else {
            callback(null, response(status));
          }
        },
        watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
          const service = call.request.service;
          const watcher = (status: Status) => call.write(response(status));
          let set = this.watchers.get(service);
          if (set === undefined) this.watchers.set(service, (set = new Set()));
          set.add(watcher);
          call.on("cancelled", () => {
            set.delete(watcher);
            if (set.size === 0 && this.watchers.get(service) === set) this.watchers.delete(service);
          });
          call.write(response(this.statuses.get(service) ?? Status.SERVICE_UNKNOWN));
        },
        list: (_call: grpc.ServerUnaryCall<HealthListRequest, HealthListResponse>, callback: grpc.sendUnaryData<HealthListResponse>) => {
          if (this.statuses.size > LIST_LIMIT) {
            callback({ code: Code.ResourceExhausted as number, details: "Too many services to list." });
            return;
          }
          const statuses: Record<string, HealthCheckResponse> = {};
          for (const [service, status] of this.statuses) statuses[service] = response(status);
          callback(null, create(HealthListResponseSchema, { statuses }));
        },
      },
    );
  }
}
