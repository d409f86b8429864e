/**
 * The Package service's own data: one entry per package in the KV bucket `packages`, under the
 * key `pkg.<package id with '.' written as '='>` (see keys.ts), holding a
 * `dronedelivery.package.v1.Package`. The entry is the only record of a package: per-owner
 * summaries are computed from these entries, never kept beside them, so they cannot drift.
 */
import type { JetStreamClient } from "nats";
import { PackageSchema, type Package } from "../../gen/dronedelivery/package/v1/package_pb.js";
import { aborted } from "../../lib/grpc/errors.js";
import { openBucket } from "../../lib/nats/kv.js";
import { isRevisionConflict, ProtoKvStore, UNCHANGED, type Versioned } from "../../lib/store/proto-kv-store.js";
import { mapWithLimit } from "./concurrency.js";
import { ALL_PACKAGES_FILTER, packageKey } from "./keys.js";

export const PACKAGES_BUCKET = "packages";

/** Attempts of a read-modify-write before a lost race answers ABORTED. */
const WRITE_ATTEMPTS = 16;
/** Entries read at once while scanning the bucket. */
const SCAN_CONCURRENCY = 32;

export interface PackageStoreOptions {
  /** Bucket replicas: 1 on a single server, 3 on a 3-node JetStream cluster. */
  replicas?: number;
}

export class PackageStore {
  constructor(readonly records: ProtoKvStore<typeof PackageSchema>) {}

  /** The package and its revision, or undefined when there is none. */
  get(packageId: string): Promise<Versioned<Package> | undefined> {
    return this.records.get(packageKey(packageId));
  }

  /**
   * Stores a package that does not exist yet (a create-only write, no read first): the revision,
   * or undefined when the package exists (the caller then reads it and decides).
   */
  async createNew(packageId: string, value: Package): Promise<number | undefined> {
    try {
      return await this.records.create(packageKey(packageId), value);
    } catch (error) {
      if (isRevisionConflict(error) || /exists/i.test((error as Error)?.message ?? "")) return undefined;
      throw error;
    }
  }

  /**
   * Revision-checked read-modify-write of one package (see ProtoKvStore.mutate): `change` sees
   * the stored package (or undefined) and returns the new one, UNCHANGED, or throws.
   */
  mutate(
    packageId: string,
    change: (current: Package | undefined) => Package | typeof UNCHANGED,
  ): Promise<Versioned<Package> & { changed: boolean }> {
    return this.records.mutate(packageKey(packageId), change, { attempts: WRITE_ATTEMPTS });
  }

  /**
   * Deletes the package if it exists (and `only` holds for it, when given), only at the revision
   * it was read at: true when this call removed it, false when it was already gone (also when a
   * concurrent call removed it first) or `only` did not hold.
   */
  async remove(packageId: string, only?: (current: Package) => boolean): Promise<boolean> {
    const key = packageKey(packageId);
    for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
      const current = await this.records.get(key);
      if (!current) return false;
      if (only && !only(current.value)) return false;
      try {
        await this.records.delete(key, current.revision);
        return true;
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
      }
    }
    throw aborted(`concurrent changes to package ${packageId} kept conflicting; retry the call`);
  }

  /**
   * The stored packages of one owner, read from the bucket: every package entry is listed and
   * read at its latest revision; entries deleted meanwhile are skipped.
   */
  async listByOwner(ownerId: string): Promise<Package[]> {
    const keys = await this.records.keys(ALL_PACKAGES_FILTER);
    const found = await mapWithLimit(keys, SCAN_CONCURRENCY, (key) => this.records.get(key));
    return found.flatMap((entry) => (entry && entry.value.ownerId === ownerId ? [entry.value] : []));
  }
}

export async function openPackageStore(js: JetStreamClient, options: PackageStoreOptions = {}): Promise<PackageStore> {
  const kv = await openBucket(js, PACKAGES_BUCKET, {
    description: "Package service: parcels by package id",
    ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
  });
  return new PackageStore(new ProtoKvStore(kv, PackageSchema));
}
