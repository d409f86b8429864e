/**
 * JetStream key-value buckets: each service keeps its own state in its own bucket (database per
 * service) and uses revision-checked updates (`kv.update(key, value, revision)`) for optimistic
 * concurrency.
 */
import { nanos, StorageType, type JetStreamClient, type KV, type KvOptions, type NatsError } from "nats";

export interface OpenBucketOptions {
  /** What the bucket holds. */
  description?: string;
  /** Values kept per key (1 to 64). Default 5. */
  history?: number;
  /** Replicas: 1 on a single server, 3 on a 3-node JetStream cluster. Default 1. */
  replicas?: number;
  /** Entries older than this (ms) expire; 0 keeps them. Default 0. */
  ttlMs?: number;
  /** Largest value accepted, in bytes; -1 for no limit. Default -1. */
  maxValueSize?: number;
  /** Open an existing bucket only; fail if it does not exist. Default false. */
  bindOnly?: boolean;
}

// JetStream API error code: stream name already in use with a different configuration.
const JS_STREAM_NAME_IN_USE = 10058;

/**
 * Opens the bucket `name`, creating it (file storage) if missing. An existing bucket whose history,
 * TTL or description differ from `opts` is updated to match. Safe when several instances of a
 * service start at once.
 */
export async function openBucket(js: JetStreamClient, name: string, opts: OpenBucketOptions = {}): Promise<KV> {
  const history = opts.history ?? 5;
  if (!Number.isInteger(history) || history < 1 || history > 64) {
    throw new RangeError(`openBucket(${name}): history must be an integer from 1 to 64, got ${history}`);
  }
  const kvOptions: Partial<KvOptions> = {
    storage: StorageType.File,
    history,
    replicas: opts.replicas ?? 1,
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
    await alignBucket(js, kv, kvOptions);
  }
  return kv;
}

/** Updates an existing bucket's history, TTL and description to the requested ones. */
async function alignBucket(js: JetStreamClient, kv: KV, want: Partial<KvOptions>): Promise<void> {
  const status = await kv.status();
  const config = status.streamInfo.config;
  const maxAge = nanos(want.ttl ?? 0);
  const update: Record<string, unknown> = {};
  if (config.max_msgs_per_subject !== want.history) update["max_msgs_per_subject"] = want.history;
  if (config.max_age !== maxAge) update["max_age"] = maxAge;
  if (want.description !== undefined && config.description !== want.description) update["description"] = want.description;
  if (Object.keys(update).length === 0) return;
  const jsm = await js.jetstreamManager();
  await jsm.streams.update(config.name, update);
}
