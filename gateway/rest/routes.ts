/**
 * The REST routes of a service, read at start-up from each method's `google.api.http` rule and
 * its `additional_bindings`: a newly annotated method gets its route without further code.
 */
import { getOption, hasOption, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { compilePathTemplate, type PathTemplate } from "./path-template.js";

export interface RestRoute {
  readonly method: DescMethod;
  /** Upper-case HTTP method, e.g. `GET`. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  /** `*` (the whole request), a top-level field name, or "" (query parameters). */
  readonly body: string;
  /** The response field sent as the body, or "" for the whole response. */
  readonly responseBody: string;
}

export type RouteMatch =
  | { readonly kind: "found"; readonly route: RestRoute; readonly variables: Map<string, string> }
  | { readonly kind: "wrong-method"; readonly allow: string[] }
  | { readonly kind: "none" };

function httpMethodOf(rule: HttpRule): { httpMethod: string; path: string } | undefined {
  switch (rule.pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return { httpMethod: rule.pattern.case.toUpperCase(), path: rule.pattern.value };
    case "custom":
      return { httpMethod: rule.pattern.value.kind.toUpperCase(), path: rule.pattern.value.path };
    default:
      return undefined;
  }
}

function checkFieldName(method: DescMethod, name: string, what: string, message = method.input): void {
  if (name === "" || name === "*") return;
  if (!message.fields.some((f) => f.name === name)) {
    throw new Error(`${method.parent.typeName}.${method.name}: ${what} "${name}" is not a field of ${message.typeName}`);
  }
}

function routeOf(method: DescMethod, rule: HttpRule): RestRoute | undefined {
  const binding = httpMethodOf(rule);
  if (!binding) return undefined;
  checkFieldName(method, rule.body, "body");
  checkFieldName(method, rule.responseBody, "response_body", method.output);
  return {
    method,
    httpMethod: binding.httpMethod,
    template: compilePathTemplate(binding.path),
    body: rule.body,
    responseBody: rule.responseBody,
  };
}

/** Every binding of every annotated method of `service`. */
export function restRoutes(service: DescService): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const method of service.methods) {
    if (!hasOption(method, http)) continue;
    const rule = getOption(method, http);
    for (const binding of [rule, ...rule.additionalBindings]) {
      const route = routeOf(method, binding);
      if (route) routes.push(route);
    }
  }
  return routes;
}

/** The route serving `httpMethod` on `path`, or why none does. */
export function matchRoute(routes: readonly RestRoute[], httpMethod: string, path: string): RouteMatch {
  const allow = new Set<string>();
  for (const route of routes) {
    const variables = route.template.match(path);
    if (!variables) continue;
    if (route.httpMethod === httpMethod) return { kind: "found", route, variables };
    allow.add(route.httpMethod);
  }
  return allow.size > 0 ? { kind: "wrong-method", allow: [...allow].sort() } : { kind: "none" };
}
