/**
 * The files of a PKI folder and the checks that decide whether they can still be used: where the
 * CA and each identity's certificate and key live, what a caller gets when it loads an identity,
 * and why a certificate must be replaced (missing, unreadable, not matching its key, not issued
 * by the current CA, expired or about to, or naming another identity).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { spiffeId } from "./identities.js";
import { dnsSubjectAltNames, uriSubjectAltNames } from "./subject-alt-names.js";

export const CA_CERT_FILE = "ca.crt";
export const CA_KEY_FILE = "ca.key";
export const LOCK_FILE = ".lock";

/** Mode of private keys: readable by the owner only. */
export const KEY_FILE_MODE = 0o600;
export const CERT_FILE_MODE = 0o644;

export interface CaPaths {
  readonly certPath: string;
  readonly keyPath: string;
}

export function caPaths(dir: string): CaPaths {
  return { certPath: join(dir, CA_CERT_FILE), keyPath: join(dir, CA_KEY_FILE) };
}

/** `<dir>/<identity>.crt` and `<dir>/<identity>.key` */
export function identityPaths(dir: string, identity: string): CaPaths {
  return { certPath: join(dir, `${identity}.crt`), keyPath: join(dir, `${identity}.key`) };
}

/** What a process needs for mutual TLS as `identity`: the CA to trust, its certificate and key (PEM). */
export interface IdentityMaterial {
  readonly identity: string;
  readonly caPem: Buffer;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
}

/** A certificate and key read from disk and parsed; undefined fields when missing or unreadable. */
export interface ParsedPair {
  readonly certPem: Buffer | undefined;
  readonly keyPem: Buffer | undefined;
  readonly cert: X509Certificate | undefined;
  readonly key: KeyObject | undefined;
}

export async function readPair(paths: CaPaths): Promise<ParsedPair> {
  const [certPem, keyPem] = await Promise.all([readOptional(paths.certPath), readOptional(paths.keyPath)]);
  return { certPem, keyPem, cert: parseCertificate(certPem), key: parseKey(keyPem) };
}

/** Why the CA pair cannot be used (or kept) at `now`; undefined when it can. */
export function caProblem(pair: ParsedPair, now: Date, minRemainingMs: number): string | undefined {
  const basic = pairProblem(pair, "CA");
  if (basic !== undefined) return basic;
  const cert = pair.cert as X509Certificate;
  if (!cert.ca) return "the CA certificate is not a CA";
  if (!cert.checkIssued(cert) || !cert.verify(cert.publicKey)) return "the CA certificate is not self-signed";
  return validityProblem(cert, now, minRemainingMs, "CA");
}

/**
 * Why an identity pair cannot be used (or kept) at `now` under `ca`; undefined when it can. A
 * certificate must also name every one of `dnsNames` (it may name more).
 */
export function identityProblem(
  pair: ParsedPair,
  identity: string,
  ca: X509Certificate,
  now: Date,
  minRemainingMs: number,
  dnsNames: readonly string[] = [],
): string | undefined {
  const basic = pairProblem(pair, identity);
  if (basic !== undefined) return basic;
  const cert = pair.cert as X509Certificate;
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return `${identity}: the certificate is not signed by the current CA`;
  if (!uriSubjectAltNames(cert.subjectAltName).includes(spiffeId(identity))) {
    return `${identity}: the certificate does not name ${spiffeId(identity)}`;
  }
  const named = dnsSubjectAltNames(cert.subjectAltName);
  const missing = dnsNames.filter((name) => !named.includes(name));
  if (missing.length > 0) return `${identity}: the certificate does not name ${missing.join(", ")}`;
  return validityProblem(cert, now, minRemainingMs, identity);
}

function pairProblem(pair: ParsedPair, what: string): string | undefined {
  if (pair.certPem === undefined) return `${what}: no certificate`;
  if (pair.keyPem === undefined) return `${what}: no key`;
  if (pair.cert === undefined) return `${what}: the certificate cannot be read`;
  if (pair.key === undefined) return `${what}: the key cannot be read`;
  if (!pair.cert.checkPrivateKey(pair.key)) return `${what}: the key does not match the certificate`;
  return undefined;
}

function validityProblem(cert: X509Certificate, now: Date, minRemainingMs: number, what: string): string | undefined {
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) return `${what}: not valid before ${notBefore.toISOString()}`;
  if (now >= notAfter) return `${what}: expired at ${notAfter.toISOString()}`;
  if (notAfter.getTime() - now.getTime() < minRemainingMs) return `${what}: expires at ${notAfter.toISOString()}, too soon`;
  return undefined;
}

function parseCertificate(pem: Buffer | undefined): X509Certificate | undefined {
  if (pem === undefined) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function parseKey(pem: Buffer | undefined): KeyObject | undefined {
  if (pem === undefined) return undefined;
  try {
    return createPrivateKey(pem);
  } catch {
    return undefined;
  }
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if (typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT") return undefined;
    throw error;
  }
}
