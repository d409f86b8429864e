/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, the same messages under two names)
 * from the generated descriptors: protobuf-es keeps each generated file's descriptor, so the files
 * of the served services and everything they import are answered from memory, with no .proto file
 * and no proto-loader or protobufjs at run time (they cost every service several MB).
 *
 * Answers as @grpc/reflection does: the services served (listServices), and for a fully qualified
 * symbol (package.Service, package.Service.Method, package.Message, a field, an enum or its value,
 * an extension), a file name or an extension, the encoded FileDescriptorProto of its file followed
 * by every file it imports, transitively; NOT_FOUND in an error response otherwise.
 */
import { create, toBinary, type MessageInitShape, type DescEnum, type DescExtension, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { protoMethod } from "./health.js";

/** The files of `services` and, transitively, every file they import. */
export function filesOf(services: readonly DescService[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.name)) return;
    seen.set(file.name, file);
    for (const dep of file.dependencies) visit(dep);
  };
  for (const service of services) visit(service.file);
  return [...seen.values()];
}

type ResponseInit = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

class ReflectionError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
  }
}

/** What reflection answers about a set of files. */
class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  /** extendee type name -> field number -> the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly encoded = new Map<DescFile, Uint8Array>();

  constructor(
    files: readonly DescFile[],
    private readonly services: readonly string[],
  ) {
    for (const file of files) {
      this.files.set(file.name, file);
      for (const message of file.messages) this.indexMessage(message);
      for (const e of file.enums) this.indexEnum(e, file.proto.package);
      for (const extension of file.extensions) this.indexExtension(extension);
      for (const service of file.services) {
        this.symbols.set(service.typeName, file);
        for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
      }
    }
  }

  private indexMessage(message: DescMessage): void {
    this.symbols.set(message.typeName, message.file);
    for (const field of message.fields) this.symbols.set(`${message.typeName}.${field.name}`, message.file);
    for (const oneof of message.oneofs) this.symbols.set(`${message.typeName}.${oneof.name}`, message.file);
    for (const nested of message.nestedMessages) this.indexMessage(nested);
    for (const e of message.nestedEnums) this.indexEnum(e, message.typeName);
    for (const extension of message.nestedExtensions) this.indexExtension(extension);
  }

  /** An enum and its values, which protobuf scopes beside the enum (in `scope`). */
  private indexEnum(e: DescEnum, scope: string): void {
    this.symbols.set(e.typeName, e.file);
    for (const value of e.values) this.symbols.set(scope ? `${scope}.${value.name}` : value.name, e.file);
  }

  private indexExtension(extension: DescExtension): void {
    this.symbols.set(extension.typeName, extension.file);
    let byNumber = this.extensions.get(extension.extendee.typeName);
    if (byNumber === undefined) this.extensions.set(extension.extendee.typeName, (byNumber = new Map()));
    byNumber.set(extension.number, extension.file);
  }

  /** The encoded descriptors of `file` and, after it, of every file it imports. */
  private withImports(file: DescFile): Uint8Array[] {
    const seen = new Set<DescFile>();
    const visit = (f: DescFile): void => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return [...seen].map((f) => {
      let bytes = this.encoded.get(f);
      if (bytes === undefined) this.encoded.set(f, (bytes = toBinary(FileDescriptorProtoSchema, f.proto)));
      return bytes;
    });
  }

  private found(file: DescFile | undefined, what: string): ResponseInit {
    if (file === undefined) throw new ReflectionError(Code.NotFound, what);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: this.withImports(file) } };
  }

  answer(request: ServerReflectionRequest): ServerReflectionResponse {
    let messageResponse: ResponseInit;
    try {
      const asked = request.messageRequest;
      switch (asked.case) {
        case "listServices":
          messageResponse = { case: "listServicesResponse", value: { service: this.services.map((name) => ({ name })) } };
          break;
        case "fileContainingSymbol":
          messageResponse = this.found(this.symbols.get(asked.value), `Symbol not found: ${asked.value}`);
          break;
        case "fileByFilename":
          messageResponse = this.found(this.files.get(asked.value), `Proto file not found: ${asked.value}`);
          break;
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = asked.value;
          messageResponse = this.found(
            this.extensions.get(containingType)?.get(extensionNumber),
            `Extension not found for symbol ${containingType} at field ${extensionNumber}`,
          );
          break;
        }
        case "allExtensionNumbersOfType": {
          const byNumber = this.extensions.get(asked.value);
          if (byNumber === undefined) throw new ReflectionError(Code.NotFound, `Extensions not found for symbol ${asked.value}`);
          messageResponse = { case: "allExtensionNumbersResponse", value: { baseTypeName: asked.value, extensionNumber: [...byNumber.keys()] } };
          break;
        }
        default:
          throw new ReflectionError(Code.Unimplemented, `Unimplemented method for request: ${String(asked.case)}`);
      }
    } catch (error) {
      const known = error instanceof ReflectionError;
      messageResponse = {
        case: "errorResponse",
        value: {
          errorCode: known ? error.code : Code.Unknown,
          errorMessage: known ? error.message : "Failed to process gRPC reflection request: unknown error",
        },
      };
    }
    return create(ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse });
  }
}

/** Adds the reflection service (v1 and v1alpha) describing `services` to a server. */
export function addReflection(server: grpc.Server, services: readonly DescService[]): void {
  const index = new ReflectionIndex(
    filesOf(services),
    services.map((s) => s.typeName),
  );
  const handler = (stream: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>): void => {
    stream.on("data", (request: ServerReflectionRequest) => stream.write(index.answer(request)));
    stream.on("end", () => stream.end());
  };
  const method = ServerReflection.method.serverReflectionInfo;
  for (const typeName of [ServerReflection.typeName, "grpc.reflection.v1alpha.ServerReflection"]) {
    const definition = protoMethod(`/${typeName}/${method.name}`, ServerReflectionRequestSchema, ServerReflectionResponseSchema, {
      request: true,
      response: true,
    });
    server.addService({ serverReflectionInfo: definition }, { serverReflectionInfo: handler });
  }
}
