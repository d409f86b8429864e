/**
 * Building the development certificates: an RSA 2048 key pair from Node's crypto (fast, native)
 * and X.509 certificates from node-forge, which signs with RSA keys only. A CA certificate, and
 * identity certificates that serve as both client and server certificates.
 */
import { generateKeyPair, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import type Forge from "node-forge";
import { spiffeId } from "./identities.js";

// node-forge is loaded the first time a certificate is made: the services only read certificates,
// and loading it would cost each of them memory for nothing.
const requireHere = createRequire(import.meta.url);
let forgeModule: typeof Forge | undefined;
function forgeLib(): typeof Forge {
  return (forgeModule ??= requireHere("node-forge") as typeof Forge);
}

const generateRsaKeyPair = promisify(generateKeyPair);

const DAY_MS = 24 * 60 * 60 * 1000;
/** notBefore is set this far back, so a peer whose clock lags a little accepts a new certificate. */
const BACKDATE_MS = 5 * 60 * 1000;

export const CA_COMMON_NAME = "dronedelivery development CA";
const ORGANIZATION = "dronedelivery";

/** A private key (PKCS#8) and the matching public key (SPKI), both PEM. */
export interface KeyPairPem {
  readonly keyPem: string;
  readonly publicKeyPem: string;
}

/** A new RSA 2048 key pair; runs on libuv's thread pool, so several can be made at once. */
export async function generateKeyPairPem(): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateRsaKeyPair("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { keyPem: privateKey, publicKeyPem: publicKey };
}

export interface ValidityOptions {
  readonly now: Date;
  readonly validityDays: number;
}

/** A self-signed CA certificate for `key`, allowed to sign end-entity certificates only. */
export function buildCaCertificate(key: KeyPairPem, { now, validityDays }: ValidityOptions): string {
  const cert = newCertificate(key, now, validityDays);
  const subject = [
    { name: "commonName", value: CA_COMMON_NAME },
    { name: "organizationName", value: ORGANIZATION },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(forgeLib().pki.privateKeyFromPem(key.keyPem), forgeLib().md.sha256.create());
  return toLf(forgeLib().pki.certificateToPem(cert));
}

/** The CA that signs identity certificates. */
export interface SigningCa {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * A certificate for `identity` signed by `ca`: the identity as common name and as SPIFFE ID, plus
 * localhost, 127.0.0.1 and ::1 so that it also serves as a server certificate on loopback, and
 * `dnsNames` (service names in a cluster, e.g. `delivery.dronedelivery.svc`) so that callers that
 * dial it by those names can check it; usable for TLS server and client authentication.
 */
export function buildIdentityCertificate(
  key: KeyPairPem,
  identity: string,
  ca: SigningCa,
  { now, validityDays }: ValidityOptions,
  dnsNames: readonly string[] = [],
): string {
  const caCert = forgeLib().pki.certificateFromPem(ca.certPem);
  const cert = newCertificate(key, now, validityDays);
  cert.setSubject([
    { name: "commonName", value: identity },
    { name: "organizationName", value: ORGANIZATION },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        { type: 6, value: spiffeId(identity) },
        { type: 2, value: "localhost" },
        ...dnsNames.filter((name) => name !== "localhost").map((value) => ({ type: 2, value })),
        { type: 7, ip: "127.0.0.1" },
        { type: 7, ip: "::1" },
      ],
    },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forgeLib().pki.privateKeyFromPem(ca.keyPem), forgeLib().md.sha256.create());
  return toLf(forgeLib().pki.certificateToPem(cert));
}

/** forge ends PEM lines with CRLF; the files use LF like Node's own PEM. */
function toLf(pem: string): string {
  return pem.replace(/\r\n/g, "\n");
}

function newCertificate(key: KeyPairPem, now: Date, validityDays: number): Forge.pki.Certificate {
  const cert = forgeLib().pki.createCertificate();
  cert.publicKey = forgeLib().pki.publicKeyFromPem(key.publicKeyPem);
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityDays * DAY_MS);
  return cert;
}

/** 16 random bytes as hex, positive (top bit clear) and never starting with a zero byte. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString("hex");
}
