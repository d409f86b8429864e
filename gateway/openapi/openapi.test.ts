import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { openApiDocument, type DocumentedVersion } from "../../scripts/protoc-gen-openapi/document.js";
import { openApiPath } from "../../scripts/protoc-gen-openapi/path-names.js";
import { PUBLIC_API } from "../../scripts/protoc-gen-openapi/public-api.js";
import { fieldByKey } from "../rest/json-check.js";
import { restRoutes, type RestRoute } from "../rest/routes.js";
import { API_VERSIONS } from "../versions.js";
import { OPENAPI_DOCUMENT } from "./document.js";
import { openApiEndpoint, OPENAPI_PATH } from "./endpoint.js";
import { ShelfService, shelfRestSuccess } from "./example-service.js";

/** The document as committed, read from disk (what `buf generate` wrote). */
const COMMITTED_FILE = new URL("../../gen/openapi/dronedelivery-api.openapi.json", import.meta.url);

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const SCHEMAS = "#/components/schemas/";

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function obj(value: unknown, what: string): JsonObject {
  if (!isObject(value)) throw new Error(`${what} is not an object: ${JSON.stringify(value)}`);
  return value;
}

/** The value a local `$ref` (`#/a/b`) points at, or undefined. */
function resolve(doc: JsonObject, ref: string): JsonValue | undefined {
  if (!ref.startsWith("#/")) return undefined;
  let node: JsonValue | undefined = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    node = isObject(node) ? node[key] : undefined;
  }
  return node;
}

function refsIn(node: JsonValue, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((item) => refsIn(item, out));
  else if (isObject(node)) {
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") out.push(value);
      else refsIn(value, out);
    }
  }
  return out;
}

/** Follows `$ref`s until an object without one. */
function deref(doc: JsonObject, node: JsonValue | undefined): JsonObject {
  let current = obj(node, "node");
  for (let i = 0; typeof current.$ref === "string" && i < 10; i++) current = obj(resolve(doc, current.$ref), current.$ref);
  return current;
}

function operationsOf(doc: JsonObject): { path: string; method: string; op: JsonObject }[] {
  const out: { path: string; method: string; op: JsonObject }[] = [];
  for (const [path, item] of Object.entries(obj(doc.paths, "paths"))) {
    for (const [method, op] of Object.entries(obj(item, path))) out.push({ path, method, op: obj(op, `${method} ${path}`) });
  }
  return out;
}

/** The routes a version serves over REST: what the document must list. */
function servedRoutes(version: DocumentedVersion): RestRoute[] {
  return restRoutes(version.service).filter(
    (r) =>
      r.template.source.startsWith(version.restPrefix) &&
      HTTP_METHODS.includes(r.httpMethod.toLowerCase()) &&
      (r.method.methodKind === "unary" || r.method.methodKind === "server_streaming"),
  );
}

function operationOf(doc: JsonObject, route: RestRoute): JsonObject {
  const path = openApiPath(route.template.source).path;
  const item = obj(obj(doc.paths, "paths")[path], `path ${path}`);
  return obj(item[route.httpMethod.toLowerCase()], `${route.httpMethod} ${path}`);
}

function parametersOf(doc: JsonObject, op: JsonObject): JsonObject[] {
  return (op.parameters as JsonValue[]).map((p) => deref(doc, p));
}

function successOf(op: JsonObject): [string, JsonObject] {
  const found = Object.entries(obj(op.responses, "responses")).find(([status]) => /^2\d\d$/.test(status));
  if (!found) throw new Error(`no success response in ${String(op.operationId)}`);
  return [found[0], obj(found[1], "success")];
}

/** Problems of a document against the OpenAPI 3.1 basics (checked by hand, no validator). */
function structuralProblems(doc: JsonObject): string[] {
  const problems: string[] = [];
  if (typeof doc.openapi !== "string" || !/^3\.1\.\d+$/.test(doc.openapi)) problems.push("openapi is not 3.1.x");
  const info = obj(doc.info, "info");
  if (typeof info.title !== "string" || typeof info.version !== "string") problems.push("info needs title and version");
  const components = obj(doc.components, "components");
  for (const [kind, entries] of Object.entries(components)) {
    for (const name of Object.keys(obj(entries, kind))) {
      if (!/^[a-zA-Z0-9.\-_]+$/.test(name)) problems.push(`component name ${kind}/${name}`);
    }
  }
  const operationIds = new Set<string>();
  for (const { path, method, op } of operationsOf(doc)) {
    const where = `${method} ${path}`;
    if (!path.startsWith("/")) problems.push(`${path} does not start with /`);
    if (!HTTP_METHODS.includes(method)) problems.push(`${where}: not an HTTP method`);
    const id = op.operationId;
    if (typeof id !== "string" || operationIds.has(id)) problems.push(`${where}: operationId missing or repeated`);
    else operationIds.add(id);
    const responses = obj(op.responses, `${where} responses`);
    for (const [status, response] of Object.entries(responses)) {
      if (!/^([1-5]\d\d|default)$/.test(status)) problems.push(`${where}: status ${status}`);
      if (typeof deref(doc, response).description !== "string") problems.push(`${where} ${status}: no description`);
    }
    const parameters = parametersOf(doc, op);
    const seen = new Set<string>();
    for (const p of parameters) {
      const key = `${String(p.in)}:${String(p.name)}`;
      if (seen.has(key)) problems.push(`${where}: parameter ${key} twice`);
      seen.add(key);
      if (!["path", "query", "header", "cookie"].includes(String(p.in))) problems.push(`${where}: parameter ${key} in`);
      if (!isObject(p.schema)) problems.push(`${where}: parameter ${key} has no schema`);
      if (p.in === "path" && p.required !== true) problems.push(`${where}: path parameter ${key} not required`);
    }
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    const declared = parameters.filter((p) => p.in === "path").map((p) => p.name);
    if (JSON.stringify([...templated].sort()) !== JSON.stringify([...declared].sort())) {
      problems.push(`${where}: path parameters ${JSON.stringify(declared)} do not match the path`);
    }
    if (op.requestBody !== undefined && !isObject(obj(op.requestBody, "requestBody").content)) {
      problems.push(`${where}: requestBody without content`);
    }
  }
  for (const ref of refsIn(doc)) {
    if (resolve(doc, ref) === undefined) problems.push(`unresolved ${ref}`);
  }
  return problems;
}

/** The schema a field's JSON value should be documented with, as far as the test checks it. */
function expectFieldSchema(schema: JsonObject, route: RestRoute, fieldName: string, side: "input" | "output"): void {
  const message = side === "input" ? route.method.input : route.method.output;
  const field = fieldByKey(message, fieldName);
  expect(field, `${message.typeName}.${fieldName}`).toBeDefined();
  if (field?.fieldKind === "message") expect(schema.$ref).toBe(`${SCHEMAS}${field.message.typeName}`);
  if (field?.fieldKind === "list") expect(schema.type).toBe("array");
}

function checkVersion(doc: JsonObject, version: DocumentedVersion): void {
  for (const route of servedRoutes(version)) {
    const op = operationOf(doc, route);
    const where = `${route.httpMethod} ${route.template.source}`;
    expect(op.tags, where).toContain(route.method.parent.typeName);
    const parameters = parametersOf(doc, op);

    // Every path variable is a path parameter; every query parameter names an unbound field.
    const pathNames = parameters.filter((p) => p.in === "path").map((p) => p.name);
    for (const variable of route.template.variables) expect(pathNames, where).toContain(variable.join("."));
    const boundTop = new Set(route.template.variables.filter((v) => v.length === 1).map((v) => fieldByKey(route.method.input, v[0] ?? "")?.name));
    for (const p of parameters.filter((q) => q.in === "query")) {
      expect(route.body, where).not.toBe("*");
      const first = String(p.name).split(".")[0] ?? "";
      const field = fieldByKey(route.method.input, first);
      expect(field, `${where} query ${String(p.name)}`).toBeDefined();
      expect(boundTop.has(field?.name), `${where} query ${String(p.name)} is bound by the path`).toBe(false);
      expect(field?.name).not.toBe(route.body);
    }

    // The request body.
    if (route.body === "") {
      expect(op.requestBody, where).toBeUndefined();
    } else {
      const body = obj(obj(obj(op.requestBody, where).content, where)["application/json"], where);
      const schema = obj(body.schema, `${where} body schema`);
      if (route.body === "*") {
        if (typeof schema.$ref === "string") {
          expect(schema.$ref).toBe(`${SCHEMAS}${route.method.input.typeName}`);
          expect(boundTop.size, where).toBe(0);
        } else {
          const names = Object.keys(obj(schema.properties, where));
          const expected = route.method.input.fields.filter((f) => !boundTop.has(f.name)).map((f) => f.jsonName);
          expect(names, where).toEqual(expected);
        }
      } else {
        expectFieldSchema(schema, route, route.body, "input");
      }
    }

    // The success answer.
    const [status, success] = successOf(op);
    if (route.method.methodKind === "server_streaming") {
      expect(status, where).toBe("200");
      const stream = obj(obj(success.content, where)["text/event-stream"], `${where} event stream`);
      expect(stream["x-event-data"]).toEqual({ $ref: `${SCHEMAS}${route.method.output.typeName}` });
    } else {
      const schema = obj(obj(obj(success.content, where)["application/json"], where).schema, where);
      if (route.responseBody === "") expect(schema).toEqual({ $ref: `${SCHEMAS}${route.method.output.typeName}` });
      else expectFieldSchema(schema, route, route.responseBody, "output");
    }

    // Errors and authentication.
    const responses = obj(op.responses, where);
    expect(responses["401"]).toEqual({ $ref: "#/components/responses/Unauthenticated" });
    expect(responses.default).toEqual({ $ref: "#/components/responses/Error" });
  }
}

describe("the OpenAPI document of the gateway's API versions (gen/openapi/, written by buf generate)", () => {
  const doc = OPENAPI_DOCUMENT;

  it("is generated for the services, prefixes and answers the gateway serves (gateway/versions.ts)", () => {
    expect(PUBLIC_API.apis.map((api) => [api.service, api.restPrefix, api.restSuccess])).toEqual(
      API_VERSIONS.map((version) => [version.service.typeName, version.restPrefix, version.restSuccess]),
    );
  });

  it("is plain JSON and meets the OpenAPI 3.1 basics, every $ref resolving", () => {
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
    expect(structuralProblems(doc)).toEqual([]);
    expect(refsIn(doc).length).toBeGreaterThan(0);
  });

  it("has every served route of every version and nothing else", () => {
    const expected = API_VERSIONS.flatMap((v) => servedRoutes(v)).map((r) => `${r.httpMethod.toLowerCase()} ${openApiPath(r.template.source).path}`);
    const listed = operationsOf(doc).map(({ path, method }) => `${method} ${path}`);
    expect(listed.sort()).toEqual(expected.sort());
    expect(expected.length).toBeGreaterThan(0);
  });

  for (const version of API_VERSIONS) {
    it(`documents ${version.restPrefix}: paths, methods, parameters, bodies and answers`, () => {
      checkVersion(doc, version);
      const package_ = version.service.typeName.split(".").slice(-2, -1)[0];
      for (const route of servedRoutes(version)) {
        expect(String(operationOf(doc, route).operationId)).toMatch(new RegExp(`^${package_}\\.${route.method.name}\\d*$`));
      }
    });
  }

  it("requires a bearer JWT on every operation", () => {
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(obj(obj(doc.components, "components").securitySchemes, "schemes").bearerAuth).toMatchObject({
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT",
    });
  });

  it("maps the v1 messages to their JSON forms", () => {
    const schemas = obj(obj(doc.components, "components").schemas, "schemas");
    expect(schemas["google.protobuf.Timestamp"]).toMatchObject({ type: "string", format: "date-time" });
    expect(schemas["google.protobuf.FieldMask"]).toMatchObject({ type: "string" });
    expect(obj(schemas["dronedelivery.api.v1.DeliveryStage"], "stage").enum).toEqual([
      "DELIVERY_STAGE_UNSPECIFIED",
      "DELIVERY_STAGE_CREATED",
      "DELIVERY_STAGE_RESCHEDULED",
      "DELIVERY_STAGE_HEADED_TO_PICKUP",
      "DELIVERY_STAGE_HEADED_TO_DROPOFF",
      "DELIVERY_STAGE_COMPLETED",
      "DELIVERY_STAGE_CANCELLED",
      "DELIVERY_STAGE_FAILED",
      "DELIVERY_STAGE_REQUESTED",
    ]);
    const schedule = obj(schemas["dronedelivery.api.v1.ScheduleDeliveryRequest"], "schedule");
    expect(schedule.required).toEqual(["pickup", "dropoff", "deadline", "packageInfo"]);
    expect(obj(schedule.properties, "props").deadline).toEqual({ $ref: `${SCHEMAS}google.protobuf.Timestamp`, description: "Checked: must lie in the future." });
    expect(obj(schemas["dronedelivery.api.v1.Location"], "location").required).toEqual(["latitude", "longitude"]);
    const delivery = obj(obj(schemas["dronedelivery.api.v1.Delivery"], "delivery").properties, "props");
    expect(delivery.deliveryId).toEqual({ type: "string", readOnly: true });
    expect(delivery.stage).toEqual({ $ref: `${SCHEMAS}dronedelivery.api.v1.DeliveryStage`, readOnly: true });
    const watch = obj(obj(schemas["dronedelivery.api.v1.WatchDeliveryResponse"], "watch").properties, "props");
    expect(watch.sequence).toMatchObject({ type: "string", format: "uint64" });
    expect(String(obj(watch.event, "event").description)).toContain("`update`");
  });

  it("documents the v1 answers other than plain 200 and the headers the gateway reads", () => {
    const paths = obj(doc.paths, "paths");
    const schedule = obj(obj(paths["/v1/deliveryrequests"], "item").post, "schedule");
    const accepted = obj(obj(schedule.responses, "responses")["202"], "202");
    expect(String(obj(obj(accepted.headers, "headers").Location, "location").description)).toContain("/v1/deliveries/{delivery_id}");
    expect(parametersOf(doc, schedule).map((p) => p.name)).toContain("Idempotency-Key");
    expect(schedule.operationId).toBe("v1.ScheduleDelivery");

    const reschedule = obj(obj(paths["/v1/deliveryrequests/{delivery_id}"], "item").patch, "reschedule");
    const body = obj(obj(obj(reschedule.requestBody, "body").content, "content")["application/json"], "json");
    expect(Object.keys(obj(obj(body.schema, "schema").properties, "props"))).toEqual(["dropoff", "pickupTime", "deadline", "updateMask"]);

    const list = obj(obj(paths["/v1/deliveries"], "item").get, "list");
    expect(parametersOf(doc, list).filter((p) => p.in === "query")).toEqual([
      { name: "pageSize", in: "query", schema: { type: "integer", format: "int32", minimum: 0, maximum: 100 } },
      { name: "pageToken", in: "query", schema: { type: "string" } },
    ]);

    const watch = obj(obj(paths["/v1/deliveries/{delivery_id}/events"], "item").get, "watch");
    expect(parametersOf(doc, watch).map((p) => `${String(p.in)}:${String(p.name)}`)).toEqual([
      "path:delivery_id",
      "query:afterSequence",
      "query:includePositions",
      "header:Last-Event-ID",
      "header:Connect-Timeout-Ms",
    ]);
    const getDelivery = obj(obj(paths["/v1/deliveries/{delivery_id}"], "item").get, "get");
    const [, ok] = successOf(getDelivery);
    expect(obj(obj(ok.content, "content")["application/json"], "json").schema).toEqual({ $ref: `${SCHEMAS}dronedelivery.api.v1.Delivery` });
  });

  it("shows the field rules the contracts declare (buf.validate)", () => {
    const schemas = obj(obj(doc.components, "components").schemas, "schemas");
    const props = (name: string) => obj(obj(schemas[name], name).properties, `${name} properties`);
    for (const version of ["v1", "v2"]) {
      const location = props(`dronedelivery.api.${version}.Location`);
      expect(location.latitude).toMatchObject({ type: "number", minimum: -90, maximum: 90 });
      expect(location.longitude).toMatchObject({ type: "number", minimum: -180, maximum: 180 });
      const schedule = props(`dronedelivery.api.${version}.ScheduleDeliveryRequest`);
      expect(schedule.idempotencyKey).toMatchObject({ type: "string", maxLength: expect.any(Number), pattern: expect.any(String) });
    }
    expect(props("dronedelivery.api.v1.PackageInfo").weightKg).toMatchObject({ exclusiveMinimum: 0, maximum: expect.any(Number) });
    expect(props("dronedelivery.api.v2.ScheduleDeliveryRequest").parcels).toMatchObject({ type: "array", minItems: 1, maxItems: expect.any(Number) });

    // A path variable shows its field's rules too.
    const get = obj(obj(obj(doc.paths, "paths")["/v1/deliveries/{delivery_id}"], "item").get, "get");
    const id = parametersOf(doc, get).find((p) => p.name === "delivery_id");
    expect(id?.schema).toMatchObject({ type: "string", pattern: expect.any(String), maxLength: expect.any(Number) });
  });

  it("describes the error body with every Connect code and the typed details", () => {
    const schemas = obj(obj(doc.components, "components").schemas, "schemas");
    const error = obj(schemas.Error, "error");
    expect(error.required).toEqual(["code", "message"]);
    const code = obj(obj(error.properties, "props").code, "code");
    expect(code.enum).toEqual(expect.arrayContaining(["invalid_argument", "unauthenticated", "not_found", "canceled"]));
    const detail = obj(schemas.ErrorDetail, "detail");
    expect(refsIn(detail).sort()).toEqual([
      `${SCHEMAS}google.rpc.BadRequest`,
      `${SCHEMAS}google.rpc.PreconditionFailure`,
      `${SCHEMAS}google.rpc.RetryInfo`,
    ]);
    expect(schemas["google.protobuf.Duration"]).toMatchObject({ type: "string" });
  });
});

describe("the OpenAPI document of a service using more of the annotations", () => {
  const version: DocumentedVersion = { restPrefix: "/x1/", service: ShelfService, restSuccess: shelfRestSuccess };
  const doc = openApiDocument([version], { title: "Shelves", version: "1.2.3" });
  const paths = obj(doc.paths, "paths");
  const schemas = obj(obj(doc.components, "components").schemas, "schemas");
  const op = (path: string, method: string) => obj(obj(paths[path], path)[method], `${method} ${path}`);

  it("is structurally sound with every binding listed", () => {
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
    expect(structuralProblems(doc)).toEqual([]);
    expect(doc.info).toEqual({ title: "Shelves", version: "1.2.3" });
    checkVersion(doc, version);
    expect(operationsOf(doc).map(({ method, path, op: o }) => `${String(o.operationId)} ${method} ${path}`).sort()).toEqual([
      "v1.GetBook get /x1/shelves/{shelf.id}/books/{book}",
      "v1.GetBook2 get /x1/books/{book}",
      "v1.GetShelf get /x1/shelves/{id}",
      "v1.GetStats get /x1/{wildcard1}/stats",
      "v1.UpdateBook patch /x1/shelves/{shelf_id}/books",
      "v1.UpdateBook2 put /x1/books:update",
      "v1.WatchBooks get /x1/shelves/{shelf_id}/books:watch",
    ]);
  });

  it("converts path templates", () => {
    expect(openApiPath("/v1/{pickup.latitude}/{name=shelves/*/books/**}:check")).toEqual({
      path: "/v1/{pickup.latitude}/{name}:check",
      subTemplates: new Map([["name", "shelves/*/books/**"]]),
      wildcards: [],
    });
    expect(openApiPath("/v1/*/x/**").path).toBe("/v1/{wildcard1}/x/{wildcard2}");
    expect(openApiPath("/v1/deliveries/{delivery_id}").path).toBe("/v1/deliveries/{delivery_id}");
  });

  it("flattens nested request fields into query parameters, leaving out bound ones and cycles", () => {
    const getBook = op("/x1/shelves/{shelf.id}/books/{book}", "get");
    const params = parametersOf(doc, getBook).filter((p) => p.in === "query");
    const names = params.map((p) => String(p.name));
    expect(names).toContain("shelf.featured.authorId");
    expect(names).toContain("filter.minPages");
    expect(names).not.toContain("shelf.id"); // bound by the path
    expect(names.some((n) => n.startsWith("filter.nested"))).toBe(false); // recursive
    expect(names.some((n) => n.startsWith("shelf.featured.parent"))).toBe(false); // recursive
    expect(names).not.toContain("shelf.featured.meta"); // a Struct has no text form
    expect(names).not.toContain("filter.labels"); // maps cannot be set from a URL
    expect(params.find((p) => p.name === "kinds")?.schema).toEqual({ type: "array", items: { $ref: `${SCHEMAS}example.shelf.v1.Kind` } });
    expect(params.find((p) => p.name === "newerThan")?.schema).toEqual({ $ref: `${SCHEMAS}google.protobuf.Timestamp` });

    const archive = op("/x1/books/{book}", "get");
    const book = parametersOf(doc, archive).find((p) => p.name === "book");
    expect(String(book?.description)).toContain("archive/**");
    expect(parametersOf(doc, archive).map((p) => p.name)).toContain("shelf.id");
  });

  it("takes a body field as the body and asks restSuccess for the status", () => {
    const update = op("/x1/shelves/{shelf_id}/books", "patch");
    expect(update.requestBody).toEqual({
      required: true,
      content: { "application/json": { schema: { $ref: `${SCHEMAS}example.shelf.v1.Book` } } },
    });
    const created = obj(obj(update.responses, "responses")["201"], "201");
    expect(String(obj(obj(created.headers, "headers").Location, "location").description)).toContain("/x1/books/{name}");
    expect(parametersOf(doc, update).map((p) => p.name)).toEqual(["shelf_id", "updateMask", "Connect-Timeout-Ms"]);

    const shelf = op("/x1/shelves/{id}", "get");
    const [, ok] = successOf(shelf);
    expect(obj(obj(ok.content, "content")["application/json"], "json").schema).toEqual({ $ref: `${SCHEMAS}example.shelf.v1.Book` });
  });

  it("writes scalars, maps, oneofs, recursion and well-known types in their JSON forms", () => {
    const book = obj(schemas["example.shelf.v1.Book"], "book");
    const props = obj(book.properties, "props");
    expect(book.required).toEqual(["name"]);
    expect(props.authorId).toEqual({ type: "string", format: "int64", pattern: "^-?[0-9]+$" });
    expect(props.cover).toMatchObject({ type: "string", contentEncoding: "base64" });
    expect(props.pages).toEqual({ type: "integer", format: "int32" });
    expect(props.weight).toEqual({ type: "number", format: "float" });
    expect(props.tags).toEqual({ type: "array", items: { type: "string" } });
    expect(props.attrs).toEqual({
      type: "object",
      propertyNames: { type: "string" },
      additionalProperties: { type: "integer", format: "int32" },
    });
    expect(obj(props.flags, "flags").additionalProperties).toEqual({ $ref: `${SCHEMAS}example.shelf.v1.Kind` });
    expect(props.parent).toEqual({ $ref: `${SCHEMAS}example.shelf.v1.Book` });
    expect(props.related).toEqual({ type: "array", items: { $ref: `${SCHEMAS}example.shelf.v1.Book` } });
    expect(props.createTime).toEqual({ $ref: `${SCHEMAS}google.protobuf.Timestamp`, readOnly: true });
    expect(props.secret).toEqual({ type: "string", writeOnly: true });
    expect(props.oldTitle).toEqual({ type: "string", deprecated: true });
    expect(String(obj(props.isbn, "isbn").description)).toContain("`catalogNo`");

    expect(schemas["google.protobuf.Duration"]).toMatchObject({ type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" });
    expect(schemas["google.protobuf.Struct"]).toMatchObject({ type: "object" });
    expect(schemas["google.protobuf.Any"]).toMatchObject({ type: "object", required: ["@type"] });
    expect(schemas["google.protobuf.DoubleValue"]).toEqual({ type: "number", format: "double" });
    expect(schemas["example.shelf.v1.Kind"]).toEqual({ type: "string", enum: ["KIND_UNSPECIFIED", "KIND_NOVEL", "KIND_ATLAS"] });
    const stats = obj(obj(schemas["example.shelf.v1.Stats"], "stats").properties, "props");
    expect(obj(stats.perKind, "perKind").propertyNames).toEqual({ enum: ["true", "false"] });
  });

  it("documents a stream as Server-Sent Events resumable with Last-Event-ID", () => {
    const watch = op("/x1/shelves/{shelf_id}/books:watch", "get");
    const [, ok] = successOf(watch);
    expect(Object.keys(obj(ok.content, "content"))).toEqual(["text/event-stream"]);
    expect(String(ok.description)).toContain("`sequence`");
    expect(parametersOf(doc, watch).map((p) => p.name)).toContain("Last-Event-ID");
  });

  it("refuses two versions serving the same method and path", () => {
    expect(() => openApiDocument([version, { ...version, restPrefix: "/x1/shelves/" }])).toThrow(/two REST routes/);
  });
});

describe("the /openapi.json endpoint", () => {
  it("answers the committed document as JSON over HTTP, headers alone for HEAD", async () => {
    const doc = JSON.parse(readFileSync(COMMITTED_FILE, "utf8")) as JsonObject;
    const server = http.createServer(openApiEndpoint(OPENAPI_DOCUMENT));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const answer = await fetch(`${base}${OPENAPI_PATH}`);
      expect(answer.status).toBe(200);
      expect(answer.headers.get("content-type")).toBe("application/json");
      expect(await answer.json()).toEqual(doc);
      const head = await fetch(`${base}${OPENAPI_PATH}`, { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe("");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
