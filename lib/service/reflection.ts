/**
 * gRPC server reflection from the generated descriptors: @grpc/reflection takes an object whose
 * values carry `fileDescriptorProtos` (encoded FileDescriptorProto bytes). protobuf-es keeps each
 * generated file's descriptor, so the files of the served services and everything they import
 * are encoded here; no .proto file or proto-loader is needed at run time.
 */
import { toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";
import type * as grpc from "@grpc/grpc-js";

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

/** Adds the reflection service (v1 and v1alpha) describing `services` to a server. */
export function addReflection(server: grpc.Server, services: readonly DescService[]): void {
  const fileDescriptorProtos = filesOf(services).map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
  // The package definition is only read for `fileDescriptorProtos`.
  const definition = { descriptors: { fileDescriptorProtos } } as unknown as ConstructorParameters<typeof ReflectionService>[0];
  new ReflectionService(definition, { services: services.map((s) => s.typeName) }).addToServer(server);
}
