/**
 * Who may do what on NATS: each process's grant in the service registry (lib/service/registry.ts)
 * says which streams it writes, which KV buckets it keeps, which streams it consumes or reads and
 * which plain subjects it listens to; here are the nats-server publish/subscribe permissions
 * derived from it. `admin` (stream setup by
 * `make run`, tests, `npm run sample`, the launcher's readiness probe) may do everything.
 *
 * The grants follow the code (lib/nats/README-auth.md gives the reasons line by line):
 *   - an event or command subject is published only by the service whose row names its stream
 *     under `writes`; the stream itself may be created and updated only by that service (or admin);
 *   - a KV bucket is written (and created, read, listed, watched) only by the services naming it;
 *   - a stream's messages are taken (consumers, acks) only by the services naming it under
 *     `consumes`, and read one by one (get by subject) only by those naming it under `reads`;
 *   - every service may read the information of the platform's streams (`ensureStreams` looks at
 *     them when a service starts) and of its own buckets' streams, nothing else.
 *
 * Replies (JetStream API answers, publish acks, pulled and pushed messages) reach a service on its
 * own inbox prefix `_INBOX.<identity>`, so no service can read another's replies; a connection
 * made as a service identity must therefore set `inboxPrefix` (natsCredentialsFromEnv and
 * connectNatsAs do).
 */
import { GATEWAY_NAME, gatewayEntry, PLATFORM_REGISTRY, serviceEntries, type NatsGrant, type Registry, type ServiceName } from "../service/registry.js";
import { STREAM_DEFINITIONS, STREAMS } from "./streams.js";

export type { NatsGrant } from "../service/registry.js";

/** Tooling and tests: may publish and subscribe to anything. */
export const ADMIN_IDENTITY = "admin";

/** The public API gateway's NATS user. */
export const GATEWAY_IDENTITY = GATEWAY_NAME;

/** Anyone that connects to NATS: a service of the platform, the gateway or admin. */
export type NatsIdentity = ServiceName | typeof GATEWAY_IDENTITY | typeof ADMIN_IDENTITY;

/** The grant of every service of a registry, by name (the gateway's is `gatewayEntry(registry).nats`). */
export function natsGrants(registry: Registry): Readonly<Record<string, NatsGrant>> {
  return Object.fromEntries(serviceEntries(registry).map((entry) => [entry.name, entry.nats]));
}

/** Every NATS user of a registry: its processes, then admin. */
export function natsIdentitiesOf(registry: Registry): string[] {
  return [...registry.map((entry) => entry.name), ADMIN_IDENTITY];
}

/** The platform's services' grants. */
export const NATS_GRANTS = natsGrants(PLATFORM_REGISTRY) as Readonly<Record<ServiceName, NatsGrant>>;

/** The gateway's grant: its own KV buckets, nothing else. */
export const GATEWAY_NATS_GRANT: NatsGrant = gatewayEntry(PLATFORM_REGISTRY)!.nats;

/** Every service identity, in the registry's order. */
export const SERVICE_NATS_IDENTITIES = Object.keys(NATS_GRANTS) as readonly ServiceName[];

/** Every identity: the services, the gateway, then admin. */
export const NATS_IDENTITIES = natsIdentitiesOf(PLATFORM_REGISTRY) as readonly NatsIdentity[];

export function isNatsIdentity(name: string): name is NatsIdentity {
  return (NATS_IDENTITIES as readonly string[]).includes(name);
}

/** Subjects an identity may publish to and subscribe to, as nats-server permissions. */
export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** The inbox prefix of an identity's connections: `_INBOX.<identity>`. */
export function inboxPrefixOf(identity: string): string {
  return `_INBOX.${identity}`;
}

const API = "$JS.API";

/** The stream behind a KV bucket. */
export function bucketStream(bucket: string): string {
  return `KV_${bucket}`;
}

/** Looking at a stream's configuration and state. */
function streamInfo(stream: string): string {
  return `${API}.STREAM.INFO.${stream}`;
}

/** Creating and updating a stream (no deleting or purging: that is admin's). */
function streamAdmin(stream: string): string[] {
  return [`${API}.STREAM.CREATE.${stream}`, `${API}.STREAM.UPDATE.${stream}`];
}

/** Reading stored messages one at a time: by sequence or by last subject, through either API. */
function streamGet(stream: string): string[] {
  return [`${API}.STREAM.MSG.GET.${stream}`, `${API}.DIRECT.GET.${stream}`, `${API}.DIRECT.GET.${stream}.>`];
}

/**
 * Consumers of a stream: create (`CONSUMER.CREATE.<stream>` for an unnamed one, and
 * `.<stream>.<name>[.<filter>]`), look up, delete, pull; acks, naks and progress reports on its
 * messages (`$JS.ACK.<stream>.>`), and flow-control answers of push consumers (`$JS.FC.<stream>.>`).
 */
function consumerUse(stream: string): string[] {
  return [
    `${API}.CONSUMER.CREATE.${stream}`,
    `${API}.CONSUMER.CREATE.${stream}.>`,
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.ACK.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** A KV bucket: its stream, its keys (`$KV.<bucket>.>`), reads, and the consumers behind keys(), watch() and history(). */
function bucketUse(bucket: string): string[] {
  const stream = bucketStream(bucket);
  return [`$KV.${bucket}.>`, streamInfo(stream), ...streamAdmin(stream), ...streamGet(stream), ...consumerUse(stream)];
}

function unique(subjects: readonly string[]): string[] {
  return [...new Set(subjects)];
}

/** The nats-server permissions of a service, derived from its grant. */
export function permissionsOfGrant(identity: string, grant: NatsGrant): NatsPermissions {
  const publish = [
    `${API}.INFO`,
    ...STREAM_DEFINITIONS.map((def) => streamInfo(def.name)),
    ...grant.writes.flatMap((name) => [...STREAMS[name].subjects, ...streamAdmin(name)]),
    ...grant.buckets.flatMap(bucketUse),
    ...grant.consumes.flatMap(consumerUse),
    ...grant.reads.flatMap(streamGet),
  ];
  const subscribe = [`${inboxPrefixOf(identity)}.>`, ...grant.listens];
  return { publish: unique(publish), subscribe: unique(subscribe) };
}

/** The nats-server permissions of an identity of `registry` (a process, or admin). */
export function natsPermissionsIn(registry: Registry, identity: string): NatsPermissions {
  if (identity === ADMIN_IDENTITY) return { publish: [">"], subscribe: [">"] };
  const entry = registry.find((e) => e.name === identity);
  if (entry === undefined) throw new Error(`"${identity}" is no NATS identity of the registry`);
  return permissionsOfGrant(identity, entry.nats);
}

/** The nats-server permissions of an identity of the platform. */
export function natsPermissionsOf(identity: NatsIdentity): NatsPermissions {
  return natsPermissionsIn(PLATFORM_REGISTRY, identity);
}
