/**
 * Who may call what: for each internal gRPC service (full protobuf name) and method, the caller
 * identities allowed, read from the callers' code (services/scheduler/clients.ts and its users,
 * services/supervisor/compensate.ts, gateway/internal-clients.ts, gateway/v1/ and gateway/fleet/). Anything not
 * in the table is refused. A new caller of a method, or a new method, needs a line here; a test
 * checks that every method of every internal service in gen/ has one.
 *
 * Caller identities come from verified client certificates (peer-identity.ts). With
 * `INTERNAL_TLS=off` there is no caller identity and authorization is skipped entirely
 * (see authorization-interceptor.ts); `authorize` itself refuses a call without a caller.
 */
import type { Identity } from "./identities.js";

/** Any caller with a certificate from the CA, whatever its identity. */
export const ANY_AUTHENTICATED = "any authenticated caller";

/** The callers of one method: a list of identities (empty: no internal caller), or ANY_AUTHENTICATED. */
export type AllowedCallers = readonly Identity[] | typeof ANY_AUTHENTICATED;

/** Methods by name, or "*" for every method of the service. */
export type MethodRules = Readonly<Record<string, AllowedCallers>>;

/** A method no internal caller uses today. */
const NO_CALLER: readonly Identity[] = [];

export const AUTHORIZATION_TABLE: Readonly<Record<string, MethodRules>> = {
  "dronedelivery.account.v1.AccountService": {
    CheckAccountStatus: ["scheduler"], // step 1 of the delivery workflow
    GetAccount: NO_CALLER,
    CreateAccount: NO_CALLER,
  },
  "dronedelivery.package.v1.PackageService": {
    UpsertPackage: ["scheduler"],
    DeletePackage: ["supervisor"], // compensation
    GetPackage: NO_CALLER,
    UpdatePackage: NO_CALLER,
    GetPackageSummary: NO_CALLER,
  },
  // Only the workflow assigns, reroutes and releases drones: the Scheduler assigns and reroutes
  // (on reschedule), the Scheduler (on cancellation) and the Supervisor (compensation) release.
  "dronedelivery.drone.v1.DroneSchedulerService": {
    AssignDrone: ["scheduler"],
    RerouteAssignment: ["scheduler"],
    ReleaseAssignment: ["scheduler", "supervisor"],
    GetAssignment: ["delivery"], // the Delivery service's reconciliation of open deliveries
    GetDrone: NO_CALLER,
    ListDrones: ["gateway"], // the operators' fleet API (gateway/fleet/)
    GetUtilization: NO_CALLER,
    WatchFleet: ["gateway"], // the operators' live fleet stream
  },
  "dronedelivery.thirdparty.v1.ThirdPartyTransportService": {
    ArrangePickup: ["scheduler"],
    CancelPickup: ["scheduler", "supervisor"],
    GetPickup: NO_CALLER,
  },
  // The workflow writes deliveries; the gateway reads them for customers and relays confirmations.
  "dronedelivery.delivery.v1.DeliveryService": {
    OpenDelivery: ["scheduler"], // the workflow's first step
    ScheduleDelivery: ["scheduler"],
    RescheduleDelivery: ["scheduler"],
    CancelDelivery: ["scheduler"],
    FailDelivery: ["supervisor"],
    GetDelivery: ["gateway"],
    GetDeliveryOwner: ["gateway"], // ownership checks before every customer read
    GetDeliveryStatus: ["gateway", "scheduler"], // the scheduler: has a parcel's earlier delivery ended?
    ListDeliveries: ["gateway"],
    GetDeliveryHistory: ["gateway"],
    WatchDelivery: ["gateway"],
    ConfirmDelivery: ["gateway"],
    GetDeliverySummary: NO_CALLER,
    ListAllDeliveries: ["gateway"], // the operators' fleet API: every account's deliveries
    GetStageCounts: ["gateway"], // the operators' fleet summary
  },
  // Ingestion publishes delivery requests; only the public gateway submits them.
  "dronedelivery.ingestion.v1.IngestionService": {
    "*": ["gateway"],
  },
  "grpc.health.v1.Health": { "*": ANY_AUTHENTICATED },
  "grpc.reflection.v1.ServerReflection": { "*": ANY_AUTHENTICATED },
  "grpc.reflection.v1alpha.ServerReflection": { "*": ANY_AUTHENTICATED },
};

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
export function allowedCallers(serviceTypeName: string, methodName: string): AllowedCallers | undefined {
  const rules = AUTHORIZATION_TABLE[serviceTypeName];
  return rules?.[methodName] ?? rules?.["*"];
}

/** Whether `caller` may call `serviceTypeName`/`methodName` (e.g. "dronedelivery.drone.v1.DroneSchedulerService", "AssignDrone"). */
export function authorize(serviceTypeName: string, methodName: string, caller: string | undefined): AuthorizationDecision {
  if (caller !== undefined) {
    const callers = allowedCallers(serviceTypeName, methodName);
    if (callers === ANY_AUTHENTICATED) return ALLOWED;
    if (callers !== undefined && (callers as readonly string[]).includes(caller)) return ALLOWED;
  }
  const target = `${serviceTypeName}/${methodName}`;
  if (caller === undefined) return { allowed: false, reason: `${target}: the caller presented no identity` };
  const callers = allowedCallers(serviceTypeName, methodName);
  if (callers === undefined) return { allowed: false, reason: `${target} is not in the authorization table` };
  if (callers === ANY_AUTHENTICATED) return ALLOWED;
  const who = callers.length === 0 ? "no internal caller" : callers.join(", ");
  return { allowed: false, reason: `${target} may be called by ${who}, not by ${caller}` };
}
