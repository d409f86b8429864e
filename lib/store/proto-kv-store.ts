/**
 * A typed view of a service's JetStream key-value bucket: values are protobuf messages of one type,
 * and every write that races another is decided by the entry revision (optimistic concurrency).
 * Nothing is cached in memory: every read goes to the bucket, so a restarted process (or a second
 * instance) sees exactly what was stored.
 */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { KV, KvEntry, NatsError } from "nats";
import { aborted } from "../grpc/errors.js";

/** A stored value with the revision it was read at. */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

/** JetStream API error: the expected last sequence (revision) did not match. */
const JS_WRONG_LAST_SEQUENCE = 10071;

/** True when a KV write failed because another writer changed the key first. */
export function isRevisionConflict(error: unknown): boolean {
  const e = error as NatsError | undefined;
  if (e?.api_error?.err_code === JS_WRONG_LAST_SEQUENCE) return true;
  return typeof e?.message === "string" && /wrong last sequence/i.test(e.message);
}

/** Keys of a bucket allow letters, digits and `-/_=.`; ids are checked before they become keys. */
const KEY_RE = /^[-/_=.a-zA-Z0-9]+$/;

export function assertKey(key: string): string {
  if (!KEY_RE.test(key) || key.startsWith(".") || key.endsWith(".")) {
    throw new TypeError(`invalid key ${JSON.stringify(key)}: use letters, digits and -/_=.`);
  }
  return key;
}

/** Returned by a `mutate` function to leave the stored value as it is. */
export const UNCHANGED: unique symbol = Symbol("unchanged");

export interface MutateOptions {
  /** Attempts before a lost race answers ABORTED. Default 10. */
  attempts?: number;
}

export class ProtoKvStore<Desc extends DescMessage> {
  constructor(
    readonly kv: KV,
    readonly schema: Desc,
  ) {}

  private decode(entry: KvEntry | null): Versioned<MessageShape<Desc>> | undefined {
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    return { value: fromBinary(this.schema, entry.value), revision: entry.revision };
  }

  /** The value under `key` and its revision, or undefined when there is none (or it was deleted). */
  async get(key: string): Promise<Versioned<MessageShape<Desc>> | undefined> {
    return this.decode(await this.kv.get(assertKey(key)));
  }

  /** Stores a value under a key that must not hold one; returns the revision, or throws a conflict. */
  async create(key: string, value: MessageShape<Desc>): Promise<number> {
    return this.kv.create(assertKey(key), toBinary(this.schema, value));
  }

  /** Replaces the value read at `revision`; throws a conflict (isRevisionConflict) when it moved on. */
  async update(key: string, value: MessageShape<Desc>, revision: number): Promise<number> {
    return this.kv.update(assertKey(key), toBinary(this.schema, value), revision);
  }

  /** Stores a value whatever is there (last writer wins). Use only for values owned by one writer. */
  async put(key: string, value: MessageShape<Desc>): Promise<number> {
    return this.kv.put(assertKey(key), toBinary(this.schema, value));
  }

  /**
   * Deletes the key. With `revision`, only if it was not changed since (throws a conflict
   * otherwise). Deleting a missing key succeeds.
   */
  async delete(key: string, revision?: number): Promise<void> {
    await this.kv.delete(assertKey(key), revision === undefined ? undefined : { previousSeq: revision });
  }

  /**
   * Reads the value, lets `change` compute the new one, and writes it only if nobody else wrote
   * in between; on a lost race it reads again and retries, and after `attempts` answers ABORTED.
   * `change` returns the new value, `UNCHANGED` to write nothing, or throws (a ConnectError answers
   * the caller). It may run more than once, so it must not have side effects.
   */
  async mutate(
    key: string,
    change: (current: MessageShape<Desc> | undefined) => MessageShape<Desc> | typeof UNCHANGED,
    options: MutateOptions = {},
  ): Promise<Versioned<MessageShape<Desc>> & { changed: boolean }> {
    const attempts = options.attempts ?? 10;
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(key);
      const next = change(current?.value);
      if (next === UNCHANGED) {
        if (!current) throw new TypeError(`mutate(${key}): UNCHANGED returned for a missing key`);
        return { ...current, changed: false };
      }
      try {
        const revision = current ? await this.update(key, next, current.revision) : await this.create(key, next);
        return { value: next, revision, changed: true };
      } catch (error) {
        const conflict = isRevisionConflict(error) || (!current && isExistsError(error));
        if (!conflict) throw error;
        if (attempt >= attempts) {
          throw aborted(`concurrent updates to ${key} kept conflicting; retry the call`);
        }
      }
    }
  }

  /**
   * Like `mutate`, for a value that must already exist: a missing key (or one deleted meanwhile)
   * is left alone and answers undefined.
   */
  async mutateExisting(
    key: string,
    change: (current: MessageShape<Desc>) => MessageShape<Desc> | typeof UNCHANGED,
    options: MutateOptions = {},
  ): Promise<(Versioned<MessageShape<Desc>> & { changed: boolean }) | undefined> {
    const attempts = options.attempts ?? 10;
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(key);
      if (!current) return undefined;
      const next = change(current.value);
      if (next === UNCHANGED) return { ...current, changed: false };
      try {
        return { value: next, revision: await this.update(key, next, current.revision), changed: true };
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
        if (attempt >= attempts) throw aborted(`concurrent updates to ${key} kept conflicting; retry the call`);
      }
    }
  }

  /**
   * Every key of the bucket (optionally under a prefix filter such as `owner.acct-1.>`), each once:
   * a key written while the listing runs is reported again by the server, so repeats are dropped.
   */
  async keys(filter?: string): Promise<string[]> {
    const out = new Set<string>();
    for await (const key of await this.kv.keys(filter)) out.add(key);
    return [...out];
  }
}

/** `kv.create` on an existing key fails with a wrong-last-sequence error or "key exists". */
function isExistsError(error: unknown): boolean {
  const message = (error as Error | undefined)?.message ?? "";
  return isRevisionConflict(error) || /exists/i.test(message);
}
