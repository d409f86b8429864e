/**
 * A made-up `example.shelf.v1.ShelfService`, built as a descriptor in code, for the document's
 * tests: it has what the public API does not use yet (additional bindings, nested and
 * sub-template path variables, a body field, `response_body` of a message field, wildcards,
 * verbs, maps, recursion, oneofs, every kind of scalar and well-known type, a custom HTTP
 * method, a client-streaming method and a route outside the REST prefix).
 */
import {
  create,
  createFileRegistry,
  setExtension,
  type DescFile,
  type DescService,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  type DescriptorProtoSchema,
  type FieldDescriptorProtoSchema,
  type MethodDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { file_google_api_annotations, http } from "../../gen/google/api/annotations_pb.js";
import { field_behavior, FieldBehavior, file_google_api_field_behavior } from "../../gen/google/api/field_behavior_pb.js";
import { HttpRuleSchema } from "../../gen/google/api/http_pb.js";

const PKG = "example.shelf.v1";

type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>;
type MessageInit = MessageInitShape<typeof DescriptorProtoSchema>;
type MethodInit = MessageInitShape<typeof MethodDescriptorProtoSchema>;
type RuleInit = MessageInitShape<typeof HttpRuleSchema>;

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function field(
  name: string,
  number: number,
  type: Type,
  more: { typeName?: string; repeated?: boolean; behavior?: FieldBehavior[]; oneofIndex?: number; deprecated?: boolean } = {},
): FieldInit {
  const options = create(FieldOptionsSchema, { deprecated: more.deprecated ?? false });
  if (more.behavior) setExtension(options, field_behavior, more.behavior);
  const init: FieldInit = {
    name,
    number,
    type,
    jsonName: camel(name),
    label: more.repeated ? Label.REPEATED : Label.OPTIONAL,
    options,
  };
  if (more.typeName !== undefined) init.typeName = more.typeName.startsWith(".") ? more.typeName : `.${PKG}.${more.typeName}`;
  if (more.oneofIndex !== undefined) init.oneofIndex = more.oneofIndex;
  return init;
}

interface MessageMore {
  readonly nestedType?: MessageInit[];
  readonly oneofDecl?: { name: string }[];
  readonly options?: { mapEntry: boolean };
}

function message(name: string, fields: FieldInit[], more: MessageMore = {}): MessageInit {
  return { name, field: fields, ...more };
}

function method(name: string, input: string, output: string, rule: RuleInit | undefined, kind: "unary" | "server" | "client" = "unary"): MethodInit {
  const options = create(MethodOptionsSchema);
  if (rule) setExtension(options, http, create(HttpRuleSchema, rule));
  return {
    name,
    inputType: `.${PKG}.${input}`,
    outputType: `.${PKG}.${output}`,
    serverStreaming: kind === "server",
    clientStreaming: kind === "client",
    options,
  };
}

const REQUIRED = [FieldBehavior.REQUIRED];

const book = message(
  "Book",
  [
    field("name", 1, Type.STRING, { behavior: REQUIRED }),
    field("author_id", 2, Type.INT64),
    field("tags", 3, Type.STRING, { repeated: true }),
    field("cover", 4, Type.BYTES),
    field("attrs", 5, Type.MESSAGE, { typeName: "Book.AttrsEntry", repeated: true }),
    field("read_time", 6, Type.MESSAGE, { typeName: ".google.protobuf.Duration" }),
    field("meta", 7, Type.MESSAGE, { typeName: ".google.protobuf.Struct" }),
    field("extra", 8, Type.MESSAGE, { typeName: ".google.protobuf.Any" }),
    field("rating", 9, Type.MESSAGE, { typeName: ".google.protobuf.DoubleValue" }),
    field("parent", 10, Type.MESSAGE, { typeName: "Book" }),
    field("related", 11, Type.MESSAGE, { typeName: "Book", repeated: true }),
    field("kind", 12, Type.ENUM, { typeName: "Kind" }),
    field("create_time", 13, Type.MESSAGE, { typeName: ".google.protobuf.Timestamp", behavior: [FieldBehavior.OUTPUT_ONLY] }),
    field("secret", 14, Type.STRING, { behavior: [FieldBehavior.INPUT_ONLY] }),
    field("isbn", 15, Type.STRING, { oneofIndex: 0 }),
    field("catalog_no", 16, Type.UINT32, { oneofIndex: 0 }),
    field("old_title", 17, Type.STRING, { deprecated: true }),
    field("pages", 18, Type.SINT32),
    field("weight", 19, Type.FLOAT),
    field("flags", 20, Type.MESSAGE, { typeName: "Book.FlagsEntry", repeated: true }),
  ],
  {
    oneofDecl: [{ name: "source" }],
    nestedType: [
      message("AttrsEntry", [field("key", 1, Type.STRING), field("value", 2, Type.INT32)], { options: { mapEntry: true } }),
      message("FlagsEntry", [field("key", 1, Type.INT64), field("value", 2, Type.ENUM, { typeName: "Kind" })], { options: { mapEntry: true } }),
    ],
  },
);

const filter = message("Filter", [
  field("min_pages", 1, Type.INT32),
  field("nested", 2, Type.MESSAGE, { typeName: "Filter" }),
  field("labels", 3, Type.MESSAGE, { typeName: "Filter.LabelsEntry", repeated: true }),
]);
filter.nestedType = [
  message("LabelsEntry", [field("key", 1, Type.STRING), field("value", 2, Type.STRING)], { options: { mapEntry: true } }),
];

const messages: MessageInit[] = [
  book,
  filter,
  message("Shelf", [field("id", 1, Type.STRING), field("featured", 2, Type.MESSAGE, { typeName: "Book" })]),
  message("GetBookRequest", [
    field("shelf", 1, Type.MESSAGE, { typeName: "Shelf" }),
    field("book", 2, Type.STRING, { behavior: REQUIRED }),
    field("read_mask", 3, Type.MESSAGE, { typeName: ".google.protobuf.FieldMask" }),
    field("kinds", 4, Type.ENUM, { typeName: "Kind", repeated: true }),
    field("filter", 5, Type.MESSAGE, { typeName: "Filter" }),
    field("newer_than", 6, Type.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
  ]),
  message("UpdateBookRequest", [
    field("shelf_id", 1, Type.STRING, { behavior: REQUIRED }),
    field("book", 2, Type.MESSAGE, { typeName: "Book", behavior: REQUIRED }),
    field("update_mask", 3, Type.MESSAGE, { typeName: ".google.protobuf.FieldMask" }),
  ]),
  message("GetShelfRequest", [field("id", 1, Type.STRING, { behavior: REQUIRED })]),
  message("WatchBooksRequest", [field("shelf_id", 1, Type.STRING), field("after_sequence", 2, Type.UINT64)]),
  message("BookEvent", [field("sequence", 1, Type.UINT64), field("book", 2, Type.MESSAGE, { typeName: "Book" })]),
  message("StatsRequest", [field("detailed", 1, Type.BOOL)]),
  message("Stats", [field("count", 1, Type.FIXED64), field("per_kind", 2, Type.MESSAGE, { typeName: "Stats.PerKindEntry", repeated: true })], {
    nestedType: [
      message("PerKindEntry", [field("key", 1, Type.BOOL), field("value", 2, Type.MESSAGE, { typeName: "Book" })], {
        options: { mapEntry: true },
      }),
    ],
  }),
];

const methods: MethodInit[] = [
  method("GetBook", "GetBookRequest", "Book", {
    pattern: { case: "get", value: "/x1/shelves/{shelf.id}/books/{book}" },
    additionalBindings: [
      { pattern: { case: "get", value: "/x1/books/{book=archive/**}" } },
      { pattern: { case: "custom", value: { kind: "LIST", path: "/x1/books" } } },
      { pattern: { case: "get", value: "/elsewhere/books/{book}" } },
    ],
  }),
  method("UpdateBook", "UpdateBookRequest", "Book", {
    pattern: { case: "patch", value: "/x1/shelves/{shelf_id}/books" },
    body: "book",
    additionalBindings: [{ pattern: { case: "put", value: "/x1/books:update" }, body: "*" }],
  }),
  method("GetShelf", "GetShelfRequest", "Shelf", { pattern: { case: "get", value: "/x1/shelves/{id}" }, responseBody: "featured" }),
  method("WatchBooks", "WatchBooksRequest", "BookEvent", { pattern: { case: "get", value: "/x1/shelves/{shelf_id}/books:watch" } }, "server"),
  method("Upload", "Book", "Book", { pattern: { case: "post", value: "/x1/uploads" }, body: "*" }, "client"),
  method("GetStats", "StatsRequest", "Stats", { pattern: { case: "get", value: "/x1/*/stats" } }),
  method("Unannotated", "StatsRequest", "Stats", undefined),
];

const DEPENDENCIES: readonly DescFile[] = [
  file_google_api_annotations,
  file_google_api_field_behavior,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
];

const fileProto = create(FileDescriptorProtoSchema, {
  name: "example/shelf/v1/shelf.proto",
  package: PKG,
  syntax: "proto3",
  dependency: DEPENDENCIES.map((f) => f.proto.name),
  messageType: messages,
  enumType: [
    {
      name: "Kind",
      value: [
        { name: "KIND_UNSPECIFIED", number: 0 },
        { name: "KIND_NOVEL", number: 1 },
        { name: "KIND_ATLAS", number: 2 },
      ],
    },
  ],
  service: [{ name: "ShelfService", method: methods }],
});

const registry = createFileRegistry(fileProto, (name) => DEPENDENCIES.find((f) => f.proto.name === name));

export const ShelfService: DescService = (() => {
  const service = registry.getService(`${PKG}.ShelfService`);
  if (!service) throw new Error("example service missing");
  return service;
})();

/** Its REST successes other than 200: an updated book answers 201 with a Location. */
export function shelfRestSuccess(methodName: string, body: unknown): { status: number; headers?: Record<string, string> } | undefined {
  if (methodName !== "UpdateBook") return undefined;
  const name = typeof body === "object" && body !== null && "name" in body ? String(body.name) : "";
  return { status: 201, headers: { location: `/x1/books/${encodeURIComponent(name)}` } };
}
