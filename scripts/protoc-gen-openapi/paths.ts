/**
 * The `paths` of the document: one operation per REST route of every version (each
 * `google.api.http` rule and additional binding), with its parameters, request body and answers.
 * Routes outside the version's REST prefix, client- or bidi-streaming methods and HTTP methods
 * OpenAPI cannot name are not served over REST and so are left out.
 */
import type { DescService, JsonObject } from "@bufbuild/protobuf";
import { fieldByKey } from "../../gateway/rest/json-check.js";
import { restRoutes, type RestRoute } from "../../gateway/rest/routes.js";
import { errorResponseRefs } from "./error-responses.js";
import { isRequired } from "./field-behavior.js";
import { headerParameters, pathBoundFields, pathParameters, queryParameters } from "./parameters.js";
import { openApiPath } from "./path-names.js";
import type { SchemaSet } from "./schemas.js";
import { successResponses, type RestSuccessOf } from "./success.js";

/** What the document needs of an API version (the gateway serves them as gateway/versions.ts lists them). */
export interface DocumentedVersion {
  readonly restPrefix: string;
  readonly service: DescService;
  readonly restSuccess?: RestSuccessOf;
}

const OPENAPI_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

/** The routes a version serves over REST, in the order of the service's methods. */
export function documentedRoutes(version: DocumentedVersion): RestRoute[] {
  return restRoutes(version.service).filter(
    (route) =>
      route.template.source.startsWith(version.restPrefix) &&
      (route.method.methodKind === "unary" || route.method.methodKind === "server_streaming") &&
      OPENAPI_METHODS.has(route.httpMethod.toLowerCase()),
  );
}

/** `GetDeliveryOwner` -> `Get delivery owner`. */
function summaryOf(methodName: string): string {
  const words = methodName.replace(/([a-z0-9])([A-Z])/g, "$1 $2").split(" ");
  return words.map((word, i) => (i === 0 ? word : word.toLowerCase())).join(" ");
}

/** `dronedelivery.api.v1` -> `v1`; the REST prefix's name when the package has none. */
function versionName(version: DocumentedVersion): string {
  const pkg = version.service.file.proto.package;
  return pkg.split(".").at(-1) || version.restPrefix.replace(/^\/+|\/+$/g, "");
}

function requestBody(route: RestRoute, schemas: SchemaSet): JsonObject | undefined {
  if (route.body === "") return undefined;
  let schema: JsonObject;
  let required: boolean;
  if (route.body === "*") {
    // Fields bound by the path are not sent in the body (the path's value would win).
    const bound = new Set([...pathBoundFields(route)].filter((path) => !path.includes(".")));
    schema = bound.size === 0 ? schemas.ref(route.method.input) : schemas.message(route.method.input, bound);
    required = route.method.input.fields.some((f) => !bound.has(f.name) && isRequired(f));
  } else {
    const field = fieldByKey(route.method.input, route.body);
    if (!field) return undefined;
    schema = schemas.field(field);
    required = isRequired(field);
  }
  return { required, content: { "application/json": { schema } } };
}

function operation(route: RestRoute, version: DocumentedVersion, operationId: string, binding: number, schemas: SchemaSet): JsonObject {
  const method = route.method;
  const parts = openApiPath(route.template.source);
  const rpc = `${method.parent.typeName}/${method.name}`;
  const kind = method.methodKind === "server_streaming" ? ", streamed as Server-Sent Events" : "";
  const op: JsonObject = {
    operationId,
    summary: summaryOf(method.name),
    description: `\`${rpc}\`${kind}${binding > 1 ? ` (binding ${binding})` : ""}.`,
    tags: [method.parent.typeName],
    parameters: [...pathParameters(route, parts, schemas), ...queryParameters(route, schemas), ...headerParameters(route)],
    responses: { ...successResponses(route, version.restSuccess, schemas), ...errorResponseRefs() },
  };
  const body = requestBody(route, schemas);
  if (body) op.requestBody = body;
  if (method.deprecated) op.deprecated = true;
  return op;
}

export interface DocumentedPaths {
  readonly paths: Record<string, JsonObject>;
  readonly tags: JsonObject[];
}

export function documentPaths(versions: readonly DocumentedVersion[], schemas: SchemaSet): DocumentedPaths {
  const paths: Record<string, JsonObject> = {};
  const tags = new Map<string, JsonObject>();
  const operationIds = new Set<string>();
  for (const version of versions) {
    const bindings = new Map<string, number>();
    for (const route of documentedRoutes(version)) {
      const method = route.method;
      const binding = (bindings.get(method.name) ?? 0) + 1;
      bindings.set(method.name, binding);
      let operationId = `${versionName(version)}.${method.name}${binding > 1 ? binding : ""}`;
      for (let n = 2; operationIds.has(operationId); n++) operationId = `${versionName(version)}.${method.name}_${n}`;
      operationIds.add(operationId);

      const path = openApiPath(route.template.source).path;
      const httpMethod = route.httpMethod.toLowerCase();
      const item = (paths[path] ??= {});
      if (item[httpMethod] !== undefined) throw new Error(`two REST routes for ${route.httpMethod} ${path}`);
      item[httpMethod] = operation(route, version, operationId, binding, schemas);
      tags.set(method.parent.typeName, {
        name: method.parent.typeName,
        description: `REST under \`${version.restPrefix}\`.`,
      });
    }
  }
  return { paths, tags: [...tags.values()] };
}
