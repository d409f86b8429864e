/**
 * The service registry: one entry per process of the platform (every service and the gateway),
 * and everything the rest of the platform needs to know about it. Every table that names services
 * is derived from it by a pure function that takes a registry (so that a test can pass the
 * registry plus an entry of its own):
 *
 *   the port table                       lib/service/ports.ts              portTable
 *   who may call each method             lib/security/authorization.ts     callerTable, authorizerOf
 *   the services a process may call      here                              dialsOf
 *   the identities the PKI issues        lib/security/identities.ts        serviceIdentities, pkiIdentities
 *   NATS users and their permissions     lib/nats/permissions.ts           natsIdentitiesOf, natsPermissionsIn
 *   `make run`'s processes               lib/service/run-plan.ts           runPlan
 *   the Kubernetes manifests             scripts/kubernetes-manifests.ts   kubernetesManifests
 *
 * An entry's name is at once its folder (services/<name>/), its identity (certificate, NATS user,
 * caller in the rules below) and the prefix of its environment variables (`<NAME>_PORT`,
 * `<NAME>_ADDRESS`, ...). services/README.md says how to add a service or an RPC;
 * test/registry/ fails when a folder and the registry disagree.
 */
import type { DescService } from "@bufbuild/protobuf";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { DeliveryService } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { DroneSchedulerService } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { IngestionService } from "../../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { ThirdPartyTransportService } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import type { StreamName } from "../nats/streams.js";

/** Any caller with a certificate from the CA, whatever its identity. */
export const ANY_AUTHENTICATED = "any authenticated caller";

/** The callers of one method: a list of identities (empty: no internal caller), or ANY_AUTHENTICATED. */
export type AllowedCallers = readonly string[] | typeof ANY_AUTHENTICATED;

/** Methods by name, or "*" for every method of the service. */
export type MethodRules = Readonly<Record<string, AllowedCallers>>;

/** A method no internal caller uses today. */
export const NO_CALLER: readonly string[] = [];

/** One gRPC service a process serves, and who may call each of its methods. */
export interface Served {
  /** The generated descriptor of its contract (gen/), or its full protobuf name. */
  readonly service: DescService | string;
  /** Every method by name (or "*"): anything not here is refused. */
  readonly callers: MethodRules;
}

/** What one process does on NATS (lib/nats/permissions.ts turns it into nats-server permissions). */
export interface NatsGrant {
  /** Streams it publishes to: it may publish every subject of the stream, and create or update the stream. */
  readonly writes: readonly StreamName[];
  /** KV buckets it keeps: it may create, update, read, write, list and watch them. */
  readonly buckets: readonly string[];
  /** Streams it takes messages from: it may create, look up, delete and pull from consumers, and ack. */
  readonly consumes: readonly StreamName[];
  /** Streams whose stored messages it reads one at a time (last message of a subject). */
  readonly reads: readonly StreamName[];
  /** Plain (non-JetStream) subjects it subscribes to. */
  readonly listens: readonly string[];
}

interface EntryBase {
  /** Folder, identity and environment prefix: lower-case letters, digits and dashes. */
  readonly name: string;
  /** The default of `<NAME>_PORT`: a service's gRPC port, the gateway's HTTP port. */
  readonly port: number;
  /** Its NATS user's grant. */
  readonly nats: NatsGrant;
  /** Pods of its Deployment in the Kubernetes manifests. */
  readonly replicas: number;
}

/** A service of services/<name>/ (main.ts starts it through the service kit). */
export interface ServiceEntry extends EntryBase {
  readonly kind: "service";
  /** The internal gRPC services it serves (health and reflection come with the kit). */
  readonly serves: readonly Served[];
}

/** The public API gateway (gateway/main.ts). */
export interface GatewayEntry extends EntryBase {
  readonly kind: "gateway";
  /** The default of GATEWAY_GRPC_PORT, its public gRPC (h2c) port. */
  readonly grpcPort: number;
  /** It serves the public API (`dronedelivery.api.*`) over Connect with its own authentication, nothing internal. */
  readonly serves: readonly [];
}

export type ProcessEntry = ServiceEntry | GatewayEntry;

/** A registry: processes in start order, every service before the gateway. */
export type Registry = readonly ProcessEntry[];

const nothing: NatsGrant = { writes: [], buckets: [], consumes: [], reads: [], listens: [] };

/** The gateway's name, identity and NATS user. */
export const GATEWAY_NAME = "gateway";

/**
 * The platform. Ports lie below Linux's ephemeral range (32768-60999): a port in it can be taken
 * at any moment by an outgoing connection (a service's own NATS connection, made while another
 * service is still starting), and the service that owns the port then cannot bind it. Metrics
 * ports (+1000), health ports of the manifests (+2000) and further instances (+100 each,
 * `make run`) stay below it too.
 *
 * Who may call what: read from the callers' code (services/scheduler/clients.ts and its users,
 * services/supervisor/compensate.ts, gateway/internal-clients.ts, gateway/v1/ and gateway/fleet/).
 * A new caller of a method, or a new method, needs a line here; a test checks that every method of
 * every internal service in gen/ has one. NATS grants follow the code too
 * (lib/nats/README-auth.md gives the reasons line by line); bucket names are those of the
 * services' stores (services/<name>/store.ts and friends), and lib/nats/permissions.test.ts
 * checks that they still match.
 */
export const PLATFORM_REGISTRY = [
  {
    kind: "service",
    name: "account",
    port: 7051,
    serves: [
      {
        service: AccountService,
        callers: {
          CheckAccountStatus: ["scheduler"], // step 1 of the delivery workflow
          GetAccount: NO_CALLER,
          CreateAccount: NO_CALLER,
        },
      },
    ],
    nats: { ...nothing, buckets: ["accounts"] },
    replicas: 2,
  },
  {
    kind: "service",
    name: "package",
    port: 7052,
    serves: [
      {
        service: PackageService,
        callers: {
          UpsertPackage: ["scheduler"],
          DeletePackage: ["supervisor"], // compensation
          GetPackage: NO_CALLER,
          UpdatePackage: NO_CALLER,
          GetPackageSummary: NO_CALLER,
        },
      },
    ],
    nats: { ...nothing, buckets: ["packages"] },
    replicas: 2,
  },
  {
    kind: "service",
    name: "drone",
    port: 7053,
    serves: [
      {
        // Only the workflow assigns, reroutes and releases drones: the Scheduler assigns and reroutes
        // (on reschedule), the Scheduler (on cancellation) and the Supervisor (compensation) release.
        service: DroneSchedulerService,
        callers: {
          AssignDrone: ["scheduler"],
          RerouteAssignment: ["scheduler"],
          ReleaseAssignment: ["scheduler", "supervisor"],
          GetAssignment: ["delivery"], // the Delivery service's reconciliation of open deliveries
          GetDrone: NO_CALLER,
          ListDrones: ["gateway"], // the operators' fleet API (gateway/fleet/)
          GetUtilization: NO_CALLER,
          WatchFleet: ["gateway"], // the operators' live fleet stream
        },
      },
    ],
    // WatchFleet relays the fleet's positions live (a core subscription, nothing stored per watcher).
    nats: { ...nothing, writes: ["DRONE_TELEMETRY"], buckets: ["drones"], listens: ["drone.*.location"] },
    replicas: 2,
  },
  {
    kind: "service",
    name: "thirdparty",
    port: 7054,
    serves: [
      {
        service: ThirdPartyTransportService,
        callers: {
          ArrangePickup: ["scheduler"],
          CancelPickup: ["scheduler", "supervisor"],
          GetPickup: NO_CALLER,
        },
      },
    ],
    nats: { ...nothing, writes: ["CARRIER_STATUS"], buckets: ["thirdparty-pickups"] },
    replicas: 2,
  },
  {
    kind: "service",
    name: "delivery",
    port: 7055,
    serves: [
      {
        // The workflow writes deliveries; the gateway reads them for customers and relays confirmations.
        service: DeliveryService,
        callers: {
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
      },
    ],
    nats: {
      ...nothing,
      writes: ["DELIVERY_STATUS"],
      buckets: ["deliveries", "delivery-history"],
      consumes: ["DRONE_TELEMETRY", "DELIVERY_STATUS", "CARRIER_STATUS"],
      // Reads a just-accepted schedule request whose workflow has not opened the delivery yet.
      reads: ["DELIVERY_STATUS", "DELIVERY_REQUESTS"],
      // WatchDelivery follows the assigned drone's positions live, outside the durable consumer.
      listens: ["drone.*.location"],
    },
    replicas: 2,
  },
  {
    kind: "service",
    name: "ingestion",
    port: 7056,
    serves: [
      {
        // Ingestion publishes delivery requests; only the public gateway submits them.
        service: IngestionService,
        callers: { "*": ["gateway"] },
      },
    ],
    nats: { ...nothing, writes: ["DELIVERY_REQUESTS"] },
    replicas: 2,
  },
  {
    kind: "service",
    name: "scheduler",
    port: 7057,
    serves: [],
    nats: { ...nothing, writes: ["WORKFLOW_FAILURES"], buckets: ["workflows"], consumes: ["DELIVERY_REQUESTS"] },
    replicas: 2,
  },
  {
    kind: "service",
    name: "supervisor",
    port: 7058,
    serves: [],
    // The saga log `workflows` is shared with the Scheduler by design (services/scheduler/README.md),
    // and the stale-workflow sweep publishes the failures of the workflows it takes over.
    nats: { ...nothing, writes: ["WORKFLOW_FAILURES"], buckets: ["workflows", "compensations"], consumes: ["WORKFLOW_FAILURES"] },
    replicas: 2,
  },
  {
    kind: "gateway",
    name: GATEWAY_NAME,
    port: 8080,
    grpcPort: 8081,
    serves: [],
    // It keeps only its idempotency fingerprints (gateway/idempotency.ts) and the rate-limit
    // counters its instances share (gateway/edge/shared-rate-limit.ts).
    nats: { ...nothing, buckets: ["gateway-idempotency", "gateway-rate-limit"] },
    replicas: 2,
  },
] as const satisfies Registry;

/** A service of the platform (not the gateway). */
export type ServiceName = Extract<(typeof PLATFORM_REGISTRY)[number], { kind: "service" }>["name"];

/** Every service entry of a registry, in its order. */
export function serviceEntries(registry: Registry): ServiceEntry[] {
  return registry.filter((entry): entry is ServiceEntry => entry.kind === "service");
}

/** The gateway's entry, if the registry has one. */
export function gatewayEntry(registry: Registry): GatewayEntry | undefined {
  return registry.find((entry): entry is GatewayEntry => entry.kind === "gateway");
}

/** The entry of `name`; throws when the registry has none. */
export function entryOf(registry: Registry, name: string): ProcessEntry {
  const entry = registry.find((e) => e.name === name);
  if (entry === undefined) throw new Error(`"${name}" is not in the service registry (lib/service/registry.ts)`);
  return entry;
}

/** The entry of service `name`; throws when it is not a service of the registry. */
export function serviceEntryOf(registry: Registry, name: string): ServiceEntry {
  const entry = entryOf(registry, name);
  if (entry.kind !== "service") throw new Error(`"${name}" is the gateway, not a service`);
  return entry;
}

/**
 * The services `name` may call: those with a caller rule naming it, in the registry's order. The
 * manifests give it their `<NAME>_ADDRESS` (`make run` gives every process every address).
 */
export function dialsOf(registry: Registry, name: string): string[] {
  return serviceEntries(registry)
    .filter((entry) => entry.serves.some((s) => Object.values(s.callers).some((allowed) => allowed !== ANY_AUTHENTICATED && allowed.includes(name))))
    .map((entry) => entry.name);
}

/** The full protobuf name of a served service. */
export function servedTypeName(served: Served): string {
  return typeof served.service === "string" ? served.service : served.service.typeName;
}

/** Where a process's main.ts is, relative to the repository root. */
export function entryPointOf(entry: ProcessEntry): string {
  return entry.kind === "gateway" ? "gateway/main.ts" : `services/${entry.name}/main.ts`;
}

/**
 * What the service kit needs of a service's module: its name, default port and the descriptors
 * of what it serves. A module spreads it: `{ ...registeredService("account"), create }`.
 */
export function registeredService(name: string, registry: Registry = PLATFORM_REGISTRY): { name: string; defaultPort: number; services: DescService[] } {
  const entry = serviceEntryOf(registry, name);
  const services = entry.serves.map((served) => {
    if (typeof served.service === "string") throw new Error(`${name} serves ${served.service}: the registry needs its descriptor to serve it`);
    return served.service;
  });
  return { name: entry.name, defaultPort: entry.port, services };
}

/**
 * What is wrong with a registry, as sentences (empty when nothing is): names that cannot be an
 * identity or are taken twice, ports taken twice, a service served by two processes, a caller
 * that is no process of the registry.
 */
export function registryProblems(registry: Registry, extraCallers: readonly string[] = ["operator"]): string[] {
  const problems: string[] = [];
  const names = registry.map((e) => e.name);
  const callers = new Set([...names, ...extraCallers]);
  const ports = new Map<number, string>();
  const served = new Map<string, string>();
  for (const entry of registry) {
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(entry.name) || entry.name === "ca" || entry.name === "admin") {
      problems.push(`${entry.name}: not a name for a process (lower-case letters, digits, dashes; not "ca" or "admin")`);
    }
    if (names.indexOf(entry.name) !== registry.indexOf(entry)) problems.push(`${entry.name}: more than one entry`);
    // Its own ports: a service's gRPC, metrics (+1000) and health (+2000) ports; the gateway's
    // HTTP, gRPC and admin (+1000) ports.
    const own = entry.kind === "gateway" ? [entry.port, entry.grpcPort, entry.port + 1000] : [entry.port, entry.port + 1000, entry.port + 2000];
    const taken = new Map<string, number[]>();
    for (const port of own) {
      const other = ports.get(port);
      if (other !== undefined) taken.set(other, [...(taken.get(other) ?? []), port]);
      else ports.set(port, entry.name);
    }
    for (const [other, list] of taken) problems.push(`${entry.name}: port${list.length > 1 ? "s" : ""} ${list.join(", ")} ${list.length > 1 ? "are" : "is"} ${other}'s already`);
    for (const s of entry.serves) {
      const typeName = servedTypeName(s);
      const other = served.get(typeName);
      if (other !== undefined) problems.push(`${entry.name}: ${typeName} is served by ${other} already`);
      served.set(typeName, entry.name);
      for (const [method, allowed] of Object.entries(s.callers)) {
        if (allowed === ANY_AUTHENTICATED) continue;
        for (const caller of allowed) {
          if (!callers.has(caller)) problems.push(`${entry.name}: ${typeName}/${method} names ${caller}, which is no process of the registry`);
        }
      }
    }
  }
  return [...new Set(problems)];
}
