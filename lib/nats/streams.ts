/**
 * The platform's JetStream streams and subjects (design.md section 4).
 *
 * Subjects put the namespace first and ids last. Every id placed in a subject must be a single NATS
 * token (see `subjects` below).
 *
 * JetStream refuses streams whose subjects overlap. DELIVERY_REQUESTS therefore lists its three
 * command subjects (`delivery.request.<command>.<deliveryId>`) rather than `delivery.request.>`:
 * the wildcard `>` matches one or more tokens, so `delivery.request.>` would also match
 * `delivery.request.status`, a subject of DELIVERY_STATUS (`delivery.*.status`) for a delivery whose
 * id is "request". A new command kind needs its subject added here.
 */
import {
  DiscardPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type NatsError,
  type StreamConfig,
  type StreamInfo,
} from "nats";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export interface StreamDefinition {
  name: string;
  description: string;
  subjects: readonly string[];
  /** Workqueue: a message is removed once a consumer acks it. Limits: kept until maxAge. */
  retention: RetentionPolicy;
  storage: StorageType;
  /** How long messages are kept, in ms; 0 keeps them until acked (work queue) or forever. */
  maxAgeMs: number;
  /** A second publish with the same Nats-Msg-Id within this window (ms) is stored once. */
  duplicateWindowMs: number;
}

/** The streams, keyed by name. Durations in milliseconds. */
export const STREAMS = {
  DELIVERY_REQUESTS: {
    name: "DELIVERY_REQUESTS",
    description: "Schedule, reschedule and cancel commands; written by ingestion, taken by the scheduler.",
    subjects: ["delivery.request.schedule.*", "delivery.request.reschedule.*", "delivery.request.cancel.*"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    maxAgeMs: 0,
    duplicateWindowMs: 2 * MINUTE,
  },
  WORKFLOW_FAILURES: {
    name: "WORKFLOW_FAILURES",
    description: "Workflows that failed for good; written by the scheduler, taken by the supervisor.",
    subjects: ["workflow.failed.>"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    maxAgeMs: 0,
    duplicateWindowMs: 2 * MINUTE,
  },
  DRONE_TELEMETRY: {
    name: "DRONE_TELEMETRY",
    description: "Drone positions in flight; written by the drone service, read by delivery and watchers.",
    subjects: ["drone.*.location"],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    maxAgeMs: 1 * HOUR,
    duplicateWindowMs: 2 * MINUTE,
  },
  DELIVERY_STATUS: {
    name: "DELIVERY_STATUS",
    description: "Delivery stage changes; written by the delivery service, read by watchers and history.",
    subjects: ["delivery.*.status"],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    maxAgeMs: 7 * DAY,
    duplicateWindowMs: 2 * MINUTE,
  },
  CARRIER_STATUS: {
    name: "CARRIER_STATUS",
    description: "Outside carriers' progress with bookings; written by the third-party service, read by delivery.",
    subjects: ["thirdparty.*.status"],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    maxAgeMs: 7 * DAY,
    duplicateWindowMs: 2 * MINUTE,
  },
} as const satisfies Record<string, StreamDefinition>;

export type StreamName = keyof typeof STREAMS;

/** All stream definitions, in the order ensureStreams() applies them. */
export const STREAM_DEFINITIONS: readonly StreamDefinition[] = Object.values(STREAMS);

// ---------------------------------------------------------------------------------------------
// Subjects

const TOKEN_RE = /^[^\s.*>]+$/u;

/** Throws unless `id` can be used as one subject token: non-empty, no '.', '*', '>' or whitespace. */
export function assertSubjectToken(id: string, what = "id"): string {
  if (typeof id !== "string" || !TOKEN_RE.test(id)) {
    throw new TypeError(
      `invalid ${what} ${JSON.stringify(id)}: a NATS subject token must be non-empty and contain no '.', '*', '>' or whitespace`,
    );
  }
  return id;
}

/** Subject builders; each validates its id. */
export const subjects = {
  scheduleRequest: (deliveryId: string) => `delivery.request.schedule.${assertSubjectToken(deliveryId, "delivery id")}`,
  rescheduleRequest: (deliveryId: string) => `delivery.request.reschedule.${assertSubjectToken(deliveryId, "delivery id")}`,
  cancelRequest: (deliveryId: string) => `delivery.request.cancel.${assertSubjectToken(deliveryId, "delivery id")}`,
  workflowFailed: (deliveryId: string) => `workflow.failed.${assertSubjectToken(deliveryId, "delivery id")}`,
  droneLocation: (droneId: string) => `drone.${assertSubjectToken(droneId, "drone id")}.location`,
  deliveryStatus: (deliveryId: string) => `delivery.${assertSubjectToken(deliveryId, "delivery id")}.status`,
  carrierStatus: (deliveryId: string) => `thirdparty.${assertSubjectToken(deliveryId, "delivery id")}.status`,
} as const;

// ---------------------------------------------------------------------------------------------
// Creating and updating streams

export interface EnsureStreamsOptions {
  /** Definitions to apply. Default: all platform streams. */
  streams?: readonly StreamDefinition[];
  /** Replicas per stream: 1 on a single server, 3 on a 3-node JetStream cluster. Default 1. */
  replicas?: number;
}

export interface EnsureStreamResult {
  name: string;
  action: "created" | "updated" | "unchanged";
  /** Fields that were changed, for "updated". */
  changed: string[];
}

/** The nats.js stream configuration for a definition. */
export function toStreamConfig(def: StreamDefinition, replicas = 1): Partial<StreamConfig> & { name: string } {
  return {
    name: def.name,
    description: def.description,
    subjects: [...def.subjects],
    retention: def.retention,
    storage: def.storage,
    discard: DiscardPolicy.Old,
    max_age: nanos(def.maxAgeMs),
    duplicate_window: nanos(def.duplicateWindowMs),
    num_replicas: replicas,
  };
}

// JetStream API error codes (nats-server errors.json).
const JS_STREAM_NOT_FOUND = 10059;
const JS_STREAM_NAME_IN_USE = 10058;

function apiErrorCode(err: unknown): number | undefined {
  return (err as NatsError | undefined)?.api_error?.err_code;
}

async function streamInfoOrNull(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (apiErrorCode(err) === JS_STREAM_NOT_FOUND || (err as Error).message === "stream not found") return null;
    throw err;
  }
}

function sameSubjects(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = [...(a ?? [])].sort();
  const y = [...(b ?? [])].sort();
  return x.length === y.length && x.every((s, i) => s === y[i]);
}

/** Fields of the existing config that differ from the wanted one: [mutable, immutable]. */
function diffConfig(have: StreamConfig, want: Partial<StreamConfig>): { mutable: string[]; immutable: string[] } {
  const mutable: string[] = [];
  const immutable: string[] = [];
  if (have.retention !== want.retention) immutable.push("retention");
  if (have.storage !== want.storage) immutable.push("storage");
  if (!sameSubjects(have.subjects, want.subjects)) mutable.push("subjects");
  if ((have.description ?? "") !== (want.description ?? "")) mutable.push("description");
  if (have.discard !== want.discard) mutable.push("discard");
  if (have.max_age !== want.max_age) mutable.push("max_age");
  if (have.duplicate_window !== want.duplicate_window) mutable.push("duplicate_window");
  if ((have.num_replicas || 1) !== (want.num_replicas || 1)) mutable.push("num_replicas");
  return { mutable, immutable };
}

function describeError(err: unknown): string {
  const api = (err as NatsError | undefined)?.api_error;
  if (api) return `${api.description} (JetStream error ${api.err_code ?? api.code})`;
  return err instanceof Error ? err.message : String(err);
}

async function ensureStream(jsm: JetStreamManager, def: StreamDefinition, replicas: number): Promise<EnsureStreamResult> {
  const want = toStreamConfig(def, replicas);
  // A few rounds, because another service may create or update the same stream at the same time.
  for (let attempt = 0; ; attempt++) {
    const info = await streamInfoOrNull(jsm, def.name);
    if (!info) {
      try {
        await jsm.streams.add(want);
        return { name: def.name, action: "created", changed: [] };
      } catch (err) {
        // Created meanwhile by someone else (with a config the server does not see as identical):
        // look again and update if needed.
        if (apiErrorCode(err) === JS_STREAM_NAME_IN_USE && attempt < 5) continue;
        throw new Error(`creating stream ${def.name} failed: ${describeError(err)}`, { cause: err });
      }
    }
    const { mutable, immutable } = diffConfig(info.config, want);
    if (immutable.length > 0) {
      throw new Error(
        `stream ${def.name} exists with a different ${immutable.join(" and ")} ` +
          `(${immutable.map((f) => `${f}: ${String(info.config[f as keyof StreamConfig])}`).join(", ")}; ` +
          `the platform defines ${immutable.map((f) => `${f}: ${String(want[f as keyof StreamConfig])}`).join(", ")}), ` +
          "which cannot be changed in place: move its messages and delete the stream first",
      );
    }
    if (mutable.length === 0) return { name: def.name, action: "unchanged", changed: [] };
    const { name: _name, retention: _retention, storage: _storage, ...updatable } = want;
    try {
      await jsm.streams.update(def.name, updatable);
    } catch (err) {
      throw new Error(`updating stream ${def.name} (${mutable.join(", ")}) failed: ${describeError(err)}`, { cause: err });
    }
    return { name: def.name, action: "updated", changed: mutable };
  }
}

/**
 * Creates the streams that are missing and updates those whose configuration differs from the
 * definitions. Idempotent, and safe when several services run it at the same time. Throws if a
 * stream exists with a retention or storage that cannot be changed in place.
 */
export async function ensureStreams(jsm: JetStreamManager, options: EnsureStreamsOptions = {}): Promise<EnsureStreamResult[]> {
  const results: EnsureStreamResult[] = [];
  for (const def of options.streams ?? STREAM_DEFINITIONS) {
    results.push(await ensureStream(jsm, def, options.replicas ?? 1));
  }
  return results;
}
