/**
 * protoc-gen-openapi, a protoc/buf plugin (`strategy: all`): one OpenAPI 3.1 document of the REST
 * routes of the services it is configured with, read from the descriptors `buf generate` sends
 * (their `google.api.http`, `google.api.field_behavior` and `buf.validate` options), written as
 * one JSON file. It takes no options: the services, their REST prefixes and answers other than
 * 200 are its configuration (public-api.ts for the platform's document).
 */
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import {
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponse_FileSchema,
  CodeGeneratorResponseSchema,
  Edition,
  FileDescriptorSetSchema,
  type CodeGeneratorRequest,
  type CodeGeneratorResponse,
} from "@bufbuild/protobuf/wkt";
import type { Plugin } from "@bufbuild/protoplugin";
import { openApiDocument, type DocumentInfo } from "./document.js";
import type { RestSuccessOf } from "./success.js";

/** A service the document shows, by full name, and how the gateway serves it. */
export interface DocumentedApi {
  readonly service: string;
  /** Its REST routes outside this prefix are not served, and not shown. */
  readonly restPrefix: string;
  /** Its answers other than 200 (see gateway/rest/handler.ts). */
  readonly restSuccess?: RestSuccessOf;
}

export interface OpenApiPluginConfig {
  /** The document's path under the plugin's `out` directory. */
  readonly file: string;
  /** The services, in the order the gateway matches their REST prefixes. */
  readonly apis: readonly DocumentedApi[];
  readonly info?: DocumentInfo;
}

/** The document's JSON text as the plugin writes it: indented, with a final newline. */
export function documentText(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

export function openApiPlugin(config: OpenApiPluginConfig): Plugin {
  return {
    name: "protoc-gen-openapi",
    version: "v1",
    run(request: CodeGeneratorRequest): CodeGeneratorResponse {
      if (request.parameter.trim() !== "") throw new Error(`takes no options, got "${request.parameter}"`);
      const response = create(CodeGeneratorResponseSchema, {
        supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL | CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS),
        minimumEdition: Edition.EDITION_PROTO2,
        maximumEdition: Edition.EDITION_2023,
      });
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
      const toGenerate = new Set(request.fileToGenerate);
      const found = config.apis.map((api) => {
        const service: DescService | undefined = registry.getService(api.service);
        return service && toGenerate.has(service.file.proto.name) ? service : undefined;
      });
      // buf runs the plugin once per input: the document comes from the input with the services.
      if (found.every((service) => service === undefined)) return response;
      const versions = config.apis.map((api, i) => {
        const service = found[i];
        if (!service) throw new Error(`service ${api.service} is not among the files to generate from`);
        return { service, restPrefix: api.restPrefix, ...(api.restSuccess ? { restSuccess: api.restSuccess } : {}) };
      });
      response.file.push(create(CodeGeneratorResponse_FileSchema, { name: config.file, content: documentText(openApiDocument(versions, config.info)) }));
      return response;
    },
  };
}
