/**
 * JetStream key-value buckets: each service keeps its own state in its own bucket (database per
 * service) and uses revision-checked updates (`kv.update(key, value, revision)`) for optimistic
 * concurrency.
 */
import { nanos, StorageType, type JetStreamClient, type JetStreamManager, type KV, type KvOptions, type MsgRequest, type NatsError, type StreamConfig } from "nats";
import { assertReplicas, natsReplicasFromEnv } from "./replicas.js";
import { describeUnapplied, planStreamUpdate, waitForStreamReplicas } from "./streams.js";

export interface OpenBucketOptions {
  /** What the bucket holds. */
  description?: string;
  /** Values kept per key (1 to 64). Default 5. */
  history?: number;
  /**
   * Replicas (1 to 5): 1 on a single server, 3 on a 3-node JetStream cluster. Raised on an existing
   * bucket that has fewer, never lowered. Default: NATS_REPLICAS (lib/nats/replicas.ts), else 1.
   */
  replicas?: number;
  /** Entries older than this (ms) expire; 0 keeps them. Default 0. */
  ttlMs?: number;
  /** Largest value accepted, in bytes; -1 for no limit. Default -1. */
  maxValueSize?: number;
  /** Open an existing bucket only; fail if it does not exist. Default false. */
  bindOnly?: boolean;
  /**
   * Called with a message when the existing bucket differs in a way that cannot be changed in
   * place (its storage). Default: process.emitWarning.
   */
  warn?: (message: string) => void;
}

// JetStream API error code: stream name already in use with a different configuration.
const JS_STREAM_NAME_IN_USE = 10058;

/**
 * Opens the bucket `name`, creating it (file storage) if missing. An existing bucket (the stream
 * KV_<name>) is brought up to `opts` the way ensureStreams treats a stream (lib/nats/streams.ts):
 * its description is set; its replicas, history (values per key) and TTL (0 = none, the longest)
 * are raised, never lowered, so a bucket an operator made stricter keeps it; a different storage
 * cannot be changed in place and is reported through `warn`, not forced. Safe when several
 * instances of a service start at once.
 */
export async function openBucket(js: JetStreamClient, name: string, opts: OpenBucketOptions = {}): Promise<KV> {
  const history = opts.history ?? 5;
  if (!Number.isInteger(history) || history < 1 || history > 64) {
    throw new RangeError(`openBucket(${name}): history must be an integer from 1 to 64, got ${history}`);
  }
  const kvOptions: Partial<KvOptions> = {
    storage: StorageType.File,
    history,
    replicas: assertReplicas(opts.replicas ?? natsReplicasFromEnv(), `openBucket(${name})`),
    ttl: opts.ttlMs ?? 0,
    maxValueSize: opts.maxValueSize ?? -1,
    bindOnly: opts.bindOnly ?? false,
  };
  if (opts.description) kvOptions.description = opts.description;

  let kv: KV;
  try {
    kv = await js.views.kv(name, kvOptions);
  } catch (err) {
    // Created at the same moment by another instance: open what is there now.
    if ((err as NatsError).api_error?.err_code !== JS_STREAM_NAME_IN_USE) throw err;
    kv = await js.views.kv(name, kvOptions);
  }
  if (kvOptions.bindOnly) {
    // nats.js binds without looking; check that the bucket is there.
    try {
      await kv.status();
    } catch (err) {
      throw new Error(`KV bucket ${name} does not exist`, { cause: err });
    }
  } else {
    await alignBucket(js, kv, kvOptions, opts.warn ?? ((message) => process.emitWarning(message, { code: "NATS_STREAM_CONFIG" })));
  }
  return kv;
}

/** Brings an existing bucket's stream up to the requested settings (raise-only where stricter). */
async function alignBucket(js: JetStreamClient, kv: KV, want: Partial<KvOptions>, warn: (message: string) => void): Promise<void> {
  const status = await kv.status();
  const config = status.streamInfo.config;
  const wanted: Partial<StreamConfig> = {
    storage: want.storage ?? StorageType.File,
    max_msgs_per_subject: want.history ?? 1,
    max_age: nanos(want.ttl ?? 0),
    num_replicas: want.replicas ?? 1,
  };
  if (want.description !== undefined) wanted.description = want.description;
  const { update, changed, unapplied } = planStreamUpdate(config, wanted);
  if (unapplied.length > 0) warn(describeUnapplied(config.name, unapplied));
  if (changed.length === 0) return;
  const jsm = await js.jetstreamManager();
  try {
    await jsm.streams.update(config.name, update);
  } catch (err) {
    const api = (err as NatsError).api_error;
    const why = api ? `${api.description} (JetStream error ${api.err_code ?? api.code})` : (err as Error).message;
    throw new Error(`updating KV bucket ${status.bucket} (${changed.join(", ")}) failed: ${why}`, { cause: err });
  }
  if (changed.includes("num_replicas")) await waitForStreamReplicas(jsm, config.name, update.num_replicas ?? 1);
}

// JetStream API error code: no message found.
const JS_NO_MESSAGE_FOUND = 10037;

/**
 * What a reader that keeps its own copy of a bucket (a watch-fed index) asks JetStream to know
 * whether it has caught up: each answer is one request.
 */
export interface KvRevisionProbe {
  /** The sequence (revision) of the last message of the bucket, any key. */
  lastRevision(): Promise<number>;
  /** The revision of the first write at or after `from` to a key matching the probe's filter; 0 when there is none. */
  nextRevision(from: number): Promise<number>;
}

/** The probe of bucket `bucket` for keys matching `keyFilter` (e.g. `drone.*`), through the JetStream API. */
export function kvRevisionProbe(jsm: JetStreamManager, bucket: string, keyFilter: string): KvRevisionProbe {
  const stream = `KV_${bucket}`;
  const subject = `$KV.${bucket}.${keyFilter}`;
  return {
    async lastRevision() {
      return (await jsm.streams.info(stream)).state.last_seq;
    },
    async nextRevision(from) {
      try {
        // The JetStream API takes `next_by_subj` (first message at or after `seq` on the subject);
        // the client's types do not list it and it passes the request through as it is.
        const query = { seq: from, next_by_subj: subject } as unknown as MsgRequest;
        return (await jsm.streams.getMessage(stream, query)).seq;
      } catch (error) {
        const e = error as NatsError;
        if (e.api_error?.err_code === JS_NO_MESSAGE_FOUND || e.code === "404") return 0;
        throw error;
      }
    },
  };
}
