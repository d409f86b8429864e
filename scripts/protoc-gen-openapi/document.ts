/**
 * The OpenAPI 3.1 document of the gateway's REST surface, built from the service descriptors
 * alone: every `google.api.http` route of every API version, its parameters and bodies, and the
 * JSON Schema of every message and enum reached (their proto3 JSON form, with the fields'
 * protovalidate rules). The plugin (plugin.ts) builds it at `buf generate` time; it is plain JSON.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { ERROR_RESPONSES, errorSchemas } from "./error-responses.js";
import { SHARED_PARAMETERS } from "./parameters.js";
import { documentPaths, type DocumentedVersion } from "./paths.js";
import { createSchemaSet } from "./schemas.js";

export type { DocumentedVersion } from "./paths.js";

export interface DocumentInfo {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
}

/** The security scheme every operation requires. */
const BEARER = "bearerAuth";

/** The versions' names (their first path segment, e.g. `v1` for `/v1/` and `/v1/fleet/`), each once. */
function defaultInfo(versions: readonly DocumentedVersion[]): DocumentInfo {
  const names = versions.map((v) => v.restPrefix.replace(/^\/+|\/+$/g, "").split("/")[0] ?? "").filter((n) => n !== "");
  return { title: "Drone delivery API", version: [...new Set(names)].join(", ") || "unversioned" };
}

export function openApiDocument(versions: readonly DocumentedVersion[], info?: DocumentInfo): JsonObject {
  const schemas = createSchemaSet();
  const { paths, tags } = documentPaths(versions, schemas);
  const errors = errorSchemas(schemas);
  const shownInfo: JsonObject = { ...(info ?? defaultInfo(versions)) };
  return {
    openapi: "3.1.0",
    info: shownInfo,
    tags,
    security: [{ [BEARER]: [] }],
    paths,
    components: {
      schemas: { ...schemas.components(), ...errors },
      responses: { ...ERROR_RESPONSES },
      parameters: { ...SHARED_PARAMETERS },
      securitySchemes: {
        [BEARER]: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "An HS256 JWT whose `sub` is the calling account; a `roles` claim holding `operator` opens the operator routes under `/v1/fleet/` (403 otherwise).",
        },
      },
    },
  };
}
