/**
 * What any gRPC tool would ask a running service, through the generated clients of the standard
 * health and reflection protocols: is it serving, which services does it expose, and the
 * descriptors of a symbol (enough for a client in any language to call it).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { healthStatus as askHealth, waitForHealth as probe } from "../../lib/service/health-probe.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { createClient } from "../../lib/grpc/index.js";

/** The probes' setting: services under test run without mutual TLS (see services.ts). */
const PROBE_ENV = { INTERNAL_TLS: "off" };

/** The health status of a service ("" = the whole server); throws when unreachable. */
export function healthStatus(address: string, service = ""): Promise<string> {
  return askHealth(address, service, 2_000, PROBE_ENV);
}

/** Polls health until it reports `want` (default SERVING); throws after `timeoutMs`. */
export async function waitForHealth(address: string, want = "SERVING", timeoutMs = 10_000): Promise<void> {
  const result = await probe(address, { want, timeoutMs, intervalMs: 50, env: PROBE_ENV });
  if (!result.ok) throw new Error(`health of ${address} is ${result.last}, not ${want}, after ${timeoutMs} ms`);
}

type ReflectionRequest =
  | { case: "listServices"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileByFilename"; value: string };

async function reflect(address: string, request: ReflectionRequest) {
  const client = createClient(ServerReflection, { address });
  try {
    for await (const response of client.serverReflectionInfo([{ messageRequest: request }], { timeoutMs: 5_000 })) {
      return response.messageResponse;
    }
    throw new Error("reflection stream ended without an answer");
  } finally {
    client.close();
  }
}

/** The services a server lists by reflection. */
export async function reflectionServices(address: string): Promise<string[]> {
  const answer = await reflect(address, { case: "listServices", value: "" });
  if (answer.case !== "listServicesResponse") throw new Error(`unexpected reflection answer ${answer.case}`);
  return answer.value.service.map((s) => s.name).sort();
}

/** The file descriptors reflection returns for a symbol (its file and the files it imports). */
export async function reflectionFilesFor(address: string, symbol: string): Promise<FileDescriptorProto[]> {
  const answer = await reflect(address, { case: "fileContainingSymbol", value: symbol });
  if (answer.case === "errorResponse") throw new Error(`reflection error ${answer.value.errorCode}: ${answer.value.errorMessage}`);
  if (answer.case !== "fileDescriptorResponse") throw new Error(`unexpected reflection answer ${answer.case}`);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}
