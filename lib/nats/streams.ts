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
import { assertReplicas, natsReplicasFromEnv } from "./replicas.js";

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
//
// What ensureStreams does with each setting of a stream that already exists:
//   - subjects, description, discard: set to the definition (the platform owns them);
//   - num_replicas, max_age, duplicate_window: raised to the definition, never lowered. A stream an
//     operator gave more copies, a longer retention (max_age 0 keeps messages forever, the longest)
//     or a longer deduplication window keeps it; the result lists it under `kept`. To lower one,
//     edit the stream by hand (e.g. `nats stream edit`): the platform will not put it back up
//     unless its own definition asks for more;
//   - retention and storage cannot be changed in place: a difference is reported (`unapplied` in
//     the result, and a process warning), never forced; the stream stays as it is;
//   - anything else an operator set (max_bytes, max_msgs, ...) is left alone.

export interface EnsureStreamsOptions {
  /** Definitions to apply. Default: all platform streams. */
  streams?: readonly StreamDefinition[];
  /**
   * Replicas per stream (1 to 5): 1 on a single server, 3 on a 3-node JetStream cluster. Raised on
   * an existing stream that has fewer, never lowered. Default: NATS_REPLICAS (lib/nats/replicas.ts),
   * else 1.
   */
  replicas?: number;
  /**
   * Called with a message for every difference that cannot be applied in place (`unapplied`).
   * Default: process.emitWarning. Pass `() => {}` to rely on the results alone.
   */
  warn?: (message: string) => void;
}

/** A setting whose current value on the server differs from what the definition asks. */
export interface SettingDifference {
  field: string;
  /** The stream's current value, as text. */
  current: string;
  /** The definition's value, as text. */
  wanted: string;
}

export interface EnsureStreamResult {
  name: string;
  action: "created" | "updated" | "unchanged";
  /** Fields that were changed, for "updated". */
  changed: string[];
  /** Settings left as they are because the stream's are stricter (more replicas, longer max_age ...). */
  kept: SettingDifference[];
  /** Differences that cannot be applied in place (retention, storage): reported, not applied. */
  unapplied: SettingDifference[];
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
/**
 * "subjects overlap with an existing stream": also what a create gets while another process's create
 * of the same stream is still being applied; looked at again like a name in use.
 */
const JS_STREAM_SUBJECT_OVERLAP = 10065;

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

/** A duration limit in nanoseconds where 0 (or less) means no limit, i.e. the longest. */
function longest(duration: number | undefined): number {
  return !duration || duration <= 0 ? Number.POSITIVE_INFINITY : duration;
}

function showDuration(ns: number | undefined): string {
  return !ns || ns <= 0 ? "unlimited" : `${ns / 1e9} s`;
}

/**
 * The settings of `have` to change so that it meets `want`, where some only ever go up (see the
 * comment above EnsureStreamsOptions). Shared with openBucket (lib/nats/kv.ts) for the stream
 * behind a bucket.
 */
export function planStreamUpdate(
  have: StreamConfig,
  want: Partial<StreamConfig>,
): { update: Partial<StreamConfig>; changed: string[]; kept: SettingDifference[]; unapplied: SettingDifference[] } {
  const update: Partial<StreamConfig> = {};
  const changed: string[] = [];
  const kept: SettingDifference[] = [];
  const unapplied: SettingDifference[] = [];
  const set = <K extends keyof StreamConfig>(field: K, value: StreamConfig[K]) => {
    update[field] = value;
    changed.push(field);
  };
  for (const field of ["retention", "storage"] as const) {
    if (want[field] !== undefined && have[field] !== want[field]) {
      unapplied.push({ field, current: String(have[field]), wanted: String(want[field]) });
    }
  }
  if (want.subjects !== undefined && !sameSubjects(have.subjects, want.subjects)) set("subjects", [...want.subjects]);
  if (want.description !== undefined && (have.description ?? "") !== want.description) set("description", want.description);
  if (want.discard !== undefined && have.discard !== want.discard) set("discard", want.discard);
  // Raised, never lowered.
  if (want.num_replicas !== undefined) {
    const current = have.num_replicas || 1;
    if (want.num_replicas > current) set("num_replicas", want.num_replicas);
    else if (want.num_replicas < current) kept.push({ field: "num_replicas", current: String(current), wanted: String(want.num_replicas) });
  }
  if (want.max_age !== undefined) {
    if (longest(want.max_age) > longest(have.max_age)) set("max_age", want.max_age);
    else if (longest(want.max_age) < longest(have.max_age)) {
      kept.push({ field: "max_age", current: showDuration(have.max_age), wanted: showDuration(want.max_age) });
    }
  }
  if (want.duplicate_window !== undefined) {
    if (want.duplicate_window > (have.duplicate_window ?? 0)) set("duplicate_window", want.duplicate_window);
    else if (want.duplicate_window < (have.duplicate_window ?? 0)) {
      kept.push({ field: "duplicate_window", current: showDuration(have.duplicate_window), wanted: showDuration(want.duplicate_window) });
    }
  }
  if (want.max_msgs_per_subject !== undefined) {
    // A KV bucket's history: values kept per key (more is stricter; 0 or -1 means no limit).
    const current = have.max_msgs_per_subject > 0 ? have.max_msgs_per_subject : Number.POSITIVE_INFINITY;
    const wanted = want.max_msgs_per_subject > 0 ? want.max_msgs_per_subject : Number.POSITIVE_INFINITY;
    if (wanted > current) set("max_msgs_per_subject", want.max_msgs_per_subject);
    else if (wanted < current) {
      kept.push({ field: "max_msgs_per_subject", current: String(have.max_msgs_per_subject), wanted: String(want.max_msgs_per_subject) });
    }
  }
  return { update, changed, kept, unapplied };
}

/** One line on what cannot be applied in place, for logs. */
export function describeUnapplied(stream: string, unapplied: readonly SettingDifference[]): string {
  return (
    `stream ${stream} exists with a different ${unapplied.map((d) => d.field).join(" and ")} ` +
    `(${unapplied.map((d) => `${d.field}: ${d.current}`).join(", ")}; the platform defines ` +
    `${unapplied.map((d) => `${d.field}: ${d.wanted}`).join(", ")}), which cannot be changed in place: ` +
    "the stream is left as it is; to apply the definition, move its messages and delete the stream"
  );
}

function describeError(err: unknown): string {
  const api = (err as NatsError | undefined)?.api_error;
  if (api) return `${api.description} (JetStream error ${api.err_code ?? api.code})`;
  return err instanceof Error ? err.message : String(err);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until stream `name` answers with `replicas` copies, a leader and every follower current:
 * after its replicas were raised, a stream answers no requests for a moment while the new peers
 * join and catch up. Throws after `timeoutMs` (default 60000) with what it saw last.
 */
export async function waitForStreamReplicas(jsm: JetStreamManager, name: string, replicas: number, timeoutMs = 60_000): Promise<StreamInfo> {
  const until = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const info = await jsm.streams.info(name);
      const followers = info.cluster?.replicas ?? [];
      const current = followers.filter((r) => r.current && !r.offline).length;
      if ((info.config.num_replicas || 1) >= replicas && (replicas <= 1 || (!!info.cluster?.leader && current >= replicas - 1))) return info;
      last = `${info.config.num_replicas} replicas, leader ${info.cluster?.leader ?? "none"}, ${current} current followers`;
    } catch (err) {
      last = describeError(err);
    }
    if (Date.now() >= until) throw new Error(`stream ${name} did not get ${replicas} current replicas within ${timeoutMs} ms (${last})`);
    await sleep(200);
  }
}

function defaultWarn(message: string): void {
  process.emitWarning(message, { code: "NATS_STREAM_CONFIG" });
}

async function ensureStream(
  jsm: JetStreamManager,
  def: StreamDefinition,
  replicas: number,
  warn: (message: string) => void,
): Promise<EnsureStreamResult> {
  const want = toStreamConfig(def, replicas);
  // A few rounds, because another service may create or update the same stream at the same time.
  for (let attempt = 0; ; attempt++) {
    const info = await streamInfoOrNull(jsm, def.name);
    if (!info) {
      try {
        await jsm.streams.add(want);
        return { name: def.name, action: "created", changed: [], kept: [], unapplied: [] };
      } catch (err) {
        // Created meanwhile by someone else (with a config the server does not see as identical):
        // look again and update if needed. An overlap that stays (another stream owns the
        // subjects) fails after the last round.
        const code = apiErrorCode(err);
        if ((code === JS_STREAM_NAME_IN_USE || code === JS_STREAM_SUBJECT_OVERLAP) && attempt < 5) continue;
        throw new Error(`creating stream ${def.name} (${replicas} replicas) failed: ${describeError(err)}`, { cause: err });
      }
    }
    const { update, changed, kept, unapplied } = planStreamUpdate(info.config, want);
    if (unapplied.length > 0) warn(describeUnapplied(def.name, unapplied));
    if (changed.length === 0) return { name: def.name, action: "unchanged", changed: [], kept, unapplied };
    try {
      await jsm.streams.update(def.name, update);
    } catch (err) {
      throw new Error(`updating stream ${def.name} (${changed.join(", ")}) failed: ${describeError(err)}`, { cause: err });
    }
    if (changed.includes("num_replicas")) await waitForStreamReplicas(jsm, def.name, replicas);
    return { name: def.name, action: "updated", changed, kept, unapplied };
  }
}

/**
 * Creates the streams that are missing and brings existing ones up to the definitions (see the
 * comment above EnsureStreamsOptions: replicas, retention and deduplication window only go up; a
 * retention or storage that differs is reported, not changed). Idempotent, and safe when several
 * services run it at the same time.
 */
export async function ensureStreams(jsm: JetStreamManager, options: EnsureStreamsOptions = {}): Promise<EnsureStreamResult[]> {
  const replicas = assertReplicas(options.replicas ?? natsReplicasFromEnv(), "ensureStreams");
  const warn = options.warn ?? defaultWarn;
  const results: EnsureStreamResult[] = [];
  for (const def of options.streams ?? STREAM_DEFINITIONS) {
    results.push(await ensureStream(jsm, def, replicas, warn));
  }
  return results;
}
