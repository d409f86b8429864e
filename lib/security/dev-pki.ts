/**
 * The development PKI: a CA and one certificate per identity in one folder (default `.run/pki`),
 * made on first use and remade when missing, unreadable, expiring or not signed by the current
 * CA. Replacing the CA replaces every identity certificate. Processes that start at once share
 * the work through a lock file; every file is written to a temporary name and renamed into place.
 */
import { X509Certificate } from "node:crypto";
import { chmod, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildCaCertificate, buildIdentityCertificate, generateKeyPairPem } from "./certificates.js";
import { withFileLock, writeFileAtomic } from "./file-lock.js";
import { isIdentityName } from "./identities.js";
import {
  CERT_FILE_MODE,
  KEY_FILE_MODE,
  LOCK_FILE,
  caPaths,
  caProblem,
  identityPaths,
  identityProblem,
  readPair,
  type IdentityMaterial,
} from "./pki-files.js";

/** `<repository>/.run/pki`, git-ignored with the rest of `.run/`. */
export const DEFAULT_PKI_DIR = fileURLToPath(new URL("../../.run/pki", import.meta.url));

const DAY_MS = 24 * 60 * 60 * 1000;

export interface DevPkiOptions {
  /** Lifetime of a new CA. Default 365 days. */
  readonly caValidityDays?: number;
  /** Lifetime of a new identity certificate. Default 30 days. */
  readonly certValidityDays?: number;
  /**
   * An identity certificate that expires within this many days is replaced. Default 7. The CA is
   * replaced once it expires within `certValidityDays`, so no new certificate outlives its CA.
   */
  readonly renewWithinDays?: number;
  /** The clock deciding validity; default the system clock. */
  readonly now?: () => Date;
  /** How long to wait for another process that is making the files. Default 60 s. */
  readonly lockTimeoutMs?: number;
  /**
   * The DNS names an identity's certificate must carry besides localhost (the service's names in
   * a cluster, `devPkiDnsNames(env)`); a kept certificate that lacks one is remade. Default none.
   */
  readonly dnsNames?: (identity: string) => readonly string[];
}

/** One file pair that was made, and why. `subject` is "ca" or an identity. */
export interface PkiChange {
  readonly subject: string;
  readonly reason: string;
}

/** An identity's files and their contents. */
export interface IdentityFiles extends IdentityMaterial {
  readonly certPath: string;
  readonly keyPath: string;
}

/** The PKI after `ensureDevPki`: every requested identity is valid and signed by the CA. */
export interface DevPki {
  readonly dir: string;
  readonly caCertPath: string;
  readonly caKeyPath: string;
  readonly caPem: Buffer;
  /** Each requested identity's files, by identity. */
  readonly identities: ReadonlyMap<string, IdentityFiles>;
  /** What this call made ("ca" and/or identities) and why; empty when everything was kept. */
  readonly changes: readonly PkiChange[];
  /** The material of a requested identity, for `serverCredentials` / `channelCredentials`. */
  material(identity: string): IdentityMaterial;
}

/**
 * Makes sure `dir` holds a valid CA and a valid certificate for each of `identities`, creating
 * or replacing what is needed, and returns them all. Safe to call from several processes at once.
 */
export async function ensureDevPki(dir: string, identities: readonly string[], options: DevPkiOptions = {}): Promise<DevPki> {
  const settings = settingsOf(options);
  const names = [...new Set(identities)];
  const invalid = names.filter((name) => !isIdentityName(name));
  if (invalid.length > 0) {
    throw new Error(`not an identity name: ${invalid.map((n) => JSON.stringify(n)).join(", ")} (lower-case letters, digits, dashes; not "ca")`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return withFileLock(join(dir, LOCK_FILE), () => ensureLocked(dir, names, settings), { timeoutMs: settings.lockTimeoutMs });
}

interface Settings {
  readonly caValidityDays: number;
  readonly certValidityDays: number;
  readonly renewWithinMs: number;
  readonly caRenewWithinMs: number;
  readonly now: () => Date;
  readonly lockTimeoutMs: number;
  readonly dnsNames: (identity: string) => readonly string[];
}

function settingsOf(options: DevPkiOptions): Settings {
  const caValidityDays = options.caValidityDays ?? 365;
  const certValidityDays = options.certValidityDays ?? 30;
  const renewWithinDays = options.renewWithinDays ?? 7;
  if (!(certValidityDays > 0)) throw new Error(`certValidityDays must be positive, not ${certValidityDays}`);
  if (!(renewWithinDays >= 0 && renewWithinDays < certValidityDays)) {
    throw new Error(`renewWithinDays (${renewWithinDays}) must be at least 0 and below certValidityDays (${certValidityDays})`);
  }
  if (!(caValidityDays > certValidityDays)) {
    throw new Error(`caValidityDays (${caValidityDays}) must be above certValidityDays (${certValidityDays})`);
  }
  return {
    caValidityDays,
    certValidityDays,
    renewWithinMs: renewWithinDays * DAY_MS,
    caRenewWithinMs: certValidityDays * DAY_MS,
    now: options.now ?? (() => new Date()),
    lockTimeoutMs: options.lockTimeoutMs ?? 60_000,
    dnsNames: options.dnsNames ?? (() => []),
  };
}

async function ensureLocked(dir: string, names: readonly string[], settings: Settings): Promise<DevPki> {
  const now = settings.now();
  const changes: PkiChange[] = [];
  const caFiles = caPaths(dir);

  const currentCa = await readPair(caFiles);
  const caReason = caProblem(currentCa, now, settings.caRenewWithinMs);
  let caCertPem: string;
  let caKeyPem: string;
  if (caReason === undefined) {
    caCertPem = (currentCa.certPem as Buffer).toString();
    caKeyPem = (currentCa.keyPem as Buffer).toString();
    await tightenKeyMode(caFiles.keyPath);
  } else {
    const key = await generateKeyPairPem();
    caCertPem = await buildCaCertificate(key, { now, validityDays: settings.caValidityDays });
    caKeyPem = key.keyPem;
    await writeFileAtomic(caFiles.keyPath, caKeyPem, KEY_FILE_MODE);
    await writeFileAtomic(caFiles.certPath, caCertPem, CERT_FILE_MODE);
    changes.push({ subject: "ca", reason: caReason });
  }
  const ca = new X509Certificate(caCertPem);

  const current = await Promise.all(names.map(async (name) => ({ name, pair: await readPair(identityPaths(dir, name)) })));
  const identities = new Map<string, IdentityFiles>();
  const toMake: { name: string; reason: string }[] = [];
  for (const { name, pair } of current) {
    const reason = caReason !== undefined ? "the CA was replaced" : identityProblem(pair, name, ca, now, settings.renewWithinMs, settings.dnsNames(name));
    if (reason !== undefined || pair.certPem === undefined || pair.keyPem === undefined) {
      toMake.push({ name, reason: reason ?? `${name}: no certificate` });
    } else {
      identities.set(name, filesOf(dir, name, Buffer.from(caCertPem), pair.certPem, pair.keyPem));
    }
  }

  const keyed = await Promise.all(toMake.map(async (item) => ({ ...item, key: await generateKeyPairPem() })));
  for (const { name, reason, key } of keyed) {
    const certPem = await buildIdentityCertificate(key, name, { certPem: caCertPem, keyPem: caKeyPem }, { now, validityDays: settings.certValidityDays }, settings.dnsNames(name));
    const paths = identityPaths(dir, name);
    await writeFileAtomic(paths.keyPath, key.keyPem, KEY_FILE_MODE);
    await writeFileAtomic(paths.certPath, certPem, CERT_FILE_MODE);
    identities.set(name, filesOf(dir, name, Buffer.from(caCertPem), Buffer.from(certPem), Buffer.from(key.keyPem)));
    changes.push({ subject: name, reason });
  }
  for (const name of names) {
    if (!toMake.some((made) => made.name === name)) await tightenKeyMode(identityPaths(dir, name).keyPath);
  }

  return {
    dir,
    caCertPath: caFiles.certPath,
    caKeyPath: caFiles.keyPath,
    caPem: Buffer.from(caCertPem),
    identities,
    changes,
    material(identity: string): IdentityMaterial {
      const files = identities.get(identity);
      if (files === undefined) throw new Error(`no certificate for "${identity}" was requested from the PKI in ${dir}`);
      const { caPem, certPem, keyPem } = files;
      return { identity, caPem, certPem, keyPem };
    },
  };
}

function filesOf(dir: string, identity: string, caPem: Buffer, certPem: Buffer, keyPem: Buffer): IdentityFiles {
  return { identity, caPem, certPem, keyPem, ...identityPaths(dir, identity) };
}

/** A kept key file readable by others (copied in by hand, say) is made owner-only. */
async function tightenKeyMode(path: string): Promise<void> {
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) await chmod(path, KEY_FILE_MODE);
}
