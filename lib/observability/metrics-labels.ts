/**
 * Label values of the platform's metrics, each mapped onto a small fixed set so that no caller can
 * grow a metric's series without bound: gRPC method paths split into service and method, gRPC
 * status codes as their names, HTTP methods, HTTP status codes and gateway route kinds.
 */

/** Label value used when a path, code or method is not one of the known shapes. */
export const UNKNOWN_LABEL = "unknown";

/** The `grpc_service` and `grpc_method` labels of a `/package.Service/Method` path. */
export interface MethodLabels {
  readonly grpc_service: string;
  readonly grpc_method: string;
}

const METHOD_PATH = /^\/([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/;

/**
 * Splits `/dronedelivery.account.v1.AccountService/GetAccount` into
 * `{ grpc_service: "dronedelivery.account.v1.AccountService", grpc_method: "GetAccount" }`.
 * Anything else (including an empty string) gives "unknown" for both.
 */
export function methodLabels(path: string): MethodLabels {
  const match = METHOD_PATH.exec(path);
  if (match === null) return { grpc_service: UNKNOWN_LABEL, grpc_method: UNKNOWN_LABEL };
  return { grpc_service: match[1] ?? UNKNOWN_LABEL, grpc_method: match[2] ?? UNKNOWN_LABEL };
}

/**
 * The 17 gRPC status code names by number, "OK" (0) to "UNAUTHENTICATED" (16). Connect's Code has the
 * same numbers (without OK) under other names (Code.Canceled is CANCELLED).
 */
export const GRPC_CODE_NAMES: readonly string[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

const GRPC_CODE_SET: ReadonlySet<string> = new Set(GRPC_CODE_NAMES);

/**
 * A gRPC status as its code name: a number (`5`, `Code.NotFound`) or a name in any case
 * (`"not_found"`) gives "NOT_FOUND". Anything else counts as "UNKNOWN", as gRPC itself does.
 */
export function grpcCodeName(code: string | number): string {
  if (typeof code === "number") {
    return (Number.isInteger(code) ? GRPC_CODE_NAMES[code] : undefined) ?? "UNKNOWN";
  }
  const name = code.trim().toUpperCase();
  return GRPC_CODE_SET.has(name) ? name : "UNKNOWN";
}

/** Where a gateway request went: REST, Connect, gRPC-Web, gRPC, or anything else (health, 404s). */
export type HttpRouteKind = "rest" | "connect" | "grpc-web" | "grpc" | "other";

const ROUTE_KINDS: ReadonlySet<string> = new Set<HttpRouteKind>(["rest", "connect", "grpc-web", "grpc", "other"]);

/** A route kind, or "other" for a value outside the set. */
export function routeKindLabel(kind: string): HttpRouteKind {
  return ROUTE_KINDS.has(kind) ? (kind as HttpRouteKind) : "other";
}

const HTTP_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** An HTTP method in upper case, or "OTHER" for one outside GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS. */
export function httpMethodLabel(method: string | undefined): string {
  const upper = (method ?? "").toUpperCase();
  return HTTP_METHODS.has(upper) ? upper : "OTHER";
}

/** An HTTP status code as text ("200"), or "unknown" for anything outside 100..599. */
export function httpStatusLabel(statusCode: number | string): string {
  const value = typeof statusCode === "number" ? statusCode : Number(statusCode);
  return Number.isInteger(value) && value >= 100 && value <= 599 ? String(value) : UNKNOWN_LABEL;
}

/**
 * The first token of a NATS subject: "delivery" for `delivery.d-1.status`, "$KV" for a KV key.
 * Subjects of the platform start with a fixed word, so this label stays bounded.
 */
export function subjectRootLabel(subject: string): string {
  const root = subject.split(".", 1)[0] ?? "";
  return root === "" ? UNKNOWN_LABEL : root;
}
