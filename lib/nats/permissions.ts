/**
 * Who may do what on NATS: one row per service saying which streams it writes, which KV buckets
 * it keeps, which streams it consumes or reads and which plain subjects it listens to, and the
 * nats-server publish/subscribe permissions derived from that row. `admin` (stream setup by
 * `make run`, tests, `npm run sample`, the launcher's readiness probe) may do everything.
 *
 * The rows follow the code (lib/nats/README-auth.md gives the reasons line by line):
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
import type { ServiceName } from "../service/ports.js";
import { STREAM_DEFINITIONS, STREAMS, type StreamName } from "./streams.js";

/** Tooling and tests: may publish and subscribe to anything. */
export const ADMIN_IDENTITY = "admin";

/**
 * The public API gateway: it keeps only its idempotency fingerprints (gateway/idempotency.ts) and
 * the rate-limit counters its instances share (gateway/edge/shared-rate-limit.ts).
 */
export const GATEWAY_IDENTITY = "gateway";

/** The gateway's grant: its own KV bucket, nothing else. */
export const GATEWAY_NATS_GRANT: NatsGrant = { writes: [], buckets: ["gateway-idempotency", "gateway-rate-limit"], consumes: [], reads: [], listens: [] };

/** Anyone that connects to NATS: a service of the platform, the gateway or admin. */
export type NatsIdentity = ServiceName | typeof GATEWAY_IDENTITY | typeof ADMIN_IDENTITY;

/** What one service does on NATS. */
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

const nothing: NatsGrant = { writes: [], buckets: [], consumes: [], reads: [], listens: [] };

/**
 * The table. Bucket names are those of the services' stores (services/<name>/store.ts and
 * friends); permissions.test.ts checks that they still match.
 */
export const NATS_GRANTS: Readonly<Record<ServiceName, NatsGrant>> = {
  account: { ...nothing, buckets: ["accounts"] },
  package: { ...nothing, buckets: ["packages"] },
  // WatchFleet relays the fleet's positions live (a core subscription, nothing stored per watcher).
  drone: { ...nothing, writes: ["DRONE_TELEMETRY"], buckets: ["drones"], listens: ["drone.*.location"] },
  thirdparty: { ...nothing, writes: ["CARRIER_STATUS"], buckets: ["thirdparty-pickups"] },
  delivery: {
    ...nothing,
    writes: ["DELIVERY_STATUS"],
    buckets: ["deliveries", "delivery-history"],
    consumes: ["DRONE_TELEMETRY", "DELIVERY_STATUS", "CARRIER_STATUS"],
    // Reads a just-accepted schedule request whose workflow has not opened the delivery yet.
    reads: ["DELIVERY_STATUS", "DELIVERY_REQUESTS"],
    // WatchDelivery follows the assigned drone's positions live, outside the durable consumer.
    listens: ["drone.*.location"],
  },
  ingestion: { ...nothing, writes: ["DELIVERY_REQUESTS"] },
  scheduler: { ...nothing, writes: ["WORKFLOW_FAILURES"], buckets: ["workflows"], consumes: ["DELIVERY_REQUESTS"] },
  // The saga log `workflows` is shared with the Scheduler by design (services/scheduler/README.md),
  // and the stale-workflow sweep publishes the failures of the workflows it takes over.
  supervisor: { ...nothing, writes: ["WORKFLOW_FAILURES"], buckets: ["workflows", "compensations"], consumes: ["WORKFLOW_FAILURES"] },
};

/** Every service identity, in the table's order. */
export const SERVICE_NATS_IDENTITIES: readonly ServiceName[] = Object.keys(NATS_GRANTS) as ServiceName[];

/** Every identity: the services, the gateway, then admin. */
export const NATS_IDENTITIES: readonly NatsIdentity[] = [...SERVICE_NATS_IDENTITIES, GATEWAY_IDENTITY, ADMIN_IDENTITY];

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

/** The nats-server permissions of an identity. */
export function natsPermissionsOf(identity: NatsIdentity): NatsPermissions {
  if (identity === ADMIN_IDENTITY) return { publish: [">"], subscribe: [">"] };
  if (identity === GATEWAY_IDENTITY) return permissionsOfGrant(identity, GATEWAY_NATS_GRANT);
  return permissionsOfGrant(identity, NATS_GRANTS[identity]);
}
