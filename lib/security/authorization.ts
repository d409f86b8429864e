/**
 * Who may call what: for each internal gRPC service (full protobuf name) and method, the caller
 * identities allowed. The rules live with the service that serves the method, in the service
 * registry (lib/service/registry.ts, where each rule's reason is written); `callerTable` gathers
 * them, with the health and reflection services every process serves. Anything not in the table
 * is refused.
 *
 * Caller identities come from verified client certificates (peer-identity.ts). With
 * `INTERNAL_TLS=off` there is no caller identity and authorization is skipped entirely
 * (see authorization-interceptor.ts); `authorize` itself refuses a call without a caller.
 */
import {
  ANY_AUTHENTICATED,
  PLATFORM_REGISTRY,
  servedTypeName,
  type AllowedCallers,
  type MethodRules,
  type Registry,
} from "../service/registry.js";

export { ANY_AUTHENTICATED, type AllowedCallers, type MethodRules } from "../service/registry.js";

/** Caller rules by full service name. */
export type CallerTable = Readonly<Record<string, MethodRules>>;

/** What the service kit serves beside a process's own services, open to every authenticated caller. */
export const KIT_SERVICES: CallerTable = {
  "grpc.health.v1.Health": { "*": ANY_AUTHENTICATED },
  "grpc.reflection.v1.ServerReflection": { "*": ANY_AUTHENTICATED },
  "grpc.reflection.v1alpha.ServerReflection": { "*": ANY_AUTHENTICATED },
};

/** The caller table of a registry: every served service's rules, then the kit's services. */
export function callerTable(registry: Registry): CallerTable {
  const table: Record<string, MethodRules> = {};
  for (const entry of registry) {
    for (const served of entry.serves) {
      const typeName = servedTypeName(served);
      if (table[typeName] !== undefined) throw new Error(`${typeName} is served by more than one process of the registry`);
      table[typeName] = served.callers;
    }
  }
  return { ...table, ...KIT_SERVICES };
}

/** The platform's table. */
export const AUTHORIZATION_TABLE: CallerTable = callerTable(PLATFORM_REGISTRY);

/**
 * The public API (`dronedelivery.api.<version>`) is not internal: the gateway serves it to the
 * public over Connect, with its own authentication (JWT) and ownership checks, and no internal
 * server serves it. Every version is public.
 */
export const PUBLIC_API_PACKAGE_PREFIX = "dronedelivery.api.";

/** Whether a service belongs to the public API rather than to the internal services. */
export function isPublicService(serviceTypeName: string): boolean {
  return serviceTypeName.startsWith(PUBLIC_API_PACKAGE_PREFIX);
}

export type AuthorizationDecision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOWED: AuthorizationDecision = { allowed: true };

/** The callers allowed on a method: its own entry, else the service's "*"; undefined when neither exists. */
export function allowedCallers(serviceTypeName: string, methodName: string, table: CallerTable = AUTHORIZATION_TABLE): AllowedCallers | undefined {
  const rules = table[serviceTypeName];
  return rules?.[methodName] ?? rules?.["*"];
}

/** Whether `caller` may call `serviceTypeName`/`methodName` (e.g. "dronedelivery.drone.v1.DroneSchedulerService", "AssignDrone"). */
export function authorize(
  serviceTypeName: string,
  methodName: string,
  caller: string | undefined,
  table: CallerTable = AUTHORIZATION_TABLE,
): AuthorizationDecision {
  const callers = allowedCallers(serviceTypeName, methodName, table);
  if (caller !== undefined) {
    if (callers === ANY_AUTHENTICATED) return ALLOWED;
    if (callers !== undefined && callers.includes(caller)) return ALLOWED;
  }
  const target = `${serviceTypeName}/${methodName}`;
  if (caller === undefined) return { allowed: false, reason: `${target}: the caller presented no identity` };
  if (callers === undefined) return { allowed: false, reason: `${target} is not in the authorization table` };
  if (callers === ANY_AUTHENTICATED) return ALLOWED;
  const who = callers.length === 0 ? "no internal caller" : callers.join(", ");
  return { allowed: false, reason: `${target} may be called by ${who}, not by ${caller}` };
}

/** The decision of `authorize` over the caller table of `registry`, for the authorization interceptor. */
export function authorizerOf(registry: Registry): (serviceTypeName: string, methodName: string, caller: string | undefined) => AuthorizationDecision {
  const table = callerTable(registry);
  return (serviceTypeName, methodName, caller) => authorize(serviceTypeName, methodName, caller, table);
}
