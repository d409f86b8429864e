/**
 * Building the development certificates: an EC P-256 key pair from Node's crypto and X.509
 * certificates from @peculiar/x509, signed through Node's WebCrypto (ECDSA with SHA-256); both take
 * a millisecond or two. A CA certificate, and identity certificates that serve as both client and
 * server certificates. A CA whose key is RSA (one made before the keys were EC, or brought from
 * elsewhere) still signs, with RSA PKCS#1 v1.5 and SHA-256.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes, webcrypto, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import type * as X509 from "@peculiar/x509";
import { spiffeId } from "./identities.js";

type X509Lib = typeof X509;

// @peculiar/x509 (and the Reflect polyfill that its dependency injection needs) is loaded the first
// time a certificate is made: the services only read certificates, and loading it would cost each
// of them memory for nothing.
let x509Lib: Promise<X509Lib> | undefined;
function x509(): Promise<X509Lib> {
  return (x509Lib ??= (async () => {
    await import("reflect-metadata");
    const lib = await import("@peculiar/x509");
    lib.cryptoProvider.set(webcrypto as unknown as Parameters<X509Lib["cryptoProvider"]["set"]>[0]);
    return lib;
  })());
}

const generateEcKeyPair = promisify(generateKeyPair);

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

/** A new EC P-256 key pair (about a millisecond). */
export async function generateKeyPairPem(): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateEcKeyPair("ec", {
    namedCurve: "prime256v1",
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
export async function buildCaCertificate(key: KeyPairPem, { now, validityDays }: ValidityOptions): Promise<string> {
  const lib = await x509();
  const publicKey = spkiDer(key.publicKeyPem);
  const signer = await signingKey(key.keyPem);
  const name = `CN=${CA_COMMON_NAME}, O=${ORGANIZATION}`;
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: name,
    issuer: name,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign | lib.KeyUsageFlags.digitalSignature, true),
      await lib.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return pemOf(cert);
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
export async function buildIdentityCertificate(
  key: KeyPairPem,
  identity: string,
  ca: SigningCa,
  { now, validityDays }: ValidityOptions,
  dnsNames: readonly string[] = [],
): Promise<string> {
  const lib = await x509();
  const caCert = new lib.X509Certificate(ca.certPem);
  const publicKey = spkiDer(key.publicKeyPem);
  const signer = await signingKey(ca.keyPem);
  // The key identifier the CA names itself by, or (a CA without one) the usual hash of its key.
  const caKeyId = caCert.getExtension(lib.SubjectKeyIdentifierExtension)?.keyId;
  const authorityKeyId =
    caKeyId !== undefined ? new lib.AuthorityKeyIdentifierExtension(caKeyId) : await lib.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
  // Signatures by an EC key need only digitalSignature; an RSA key may also encipher a TLS 1.2 key exchange.
  const keyUsage = lib.KeyUsageFlags.digitalSignature | (isRsa(createPublicKey(key.publicKeyPem)) ? lib.KeyUsageFlags.keyEncipherment : 0);
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [identity] }, { O: [ORGANIZATION] }],
    // The CA's subject exactly as encoded in its certificate, so that issuer and subject match byte for byte.
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(keyUsage, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth, lib.ExtendedKeyUsage.clientAuth]),
      new lib.SubjectAlternativeNameExtension([
        { type: "url", value: spiffeId(identity) },
        { type: "dns", value: "localhost" },
        ...dnsNames.filter((name) => name !== "localhost").map((value) => ({ type: "dns" as const, value })),
        { type: "ip", value: "127.0.0.1" },
        { type: "ip", value: "::1" },
      ]),
      await lib.SubjectKeyIdentifierExtension.create(publicKey),
      authorityKeyId,
    ],
  });
  return pemOf(cert);
}

interface Signer {
  readonly key: webcrypto.CryptoKey;
  readonly algorithm: { readonly name: string; readonly hash: string };
}

/** The WebCrypto signing key and algorithm for a PKCS#8 PEM key: ECDSA (P-256, P-384) or RSA, with SHA-256. */
async function signingKey(keyPem: string): Promise<Signer> {
  const key = createPrivateKey(keyPem);
  const der = key.export({ type: "pkcs8", format: "der" });
  if (key.asymmetricKeyType === "ec") {
    const namedCurve = WEB_CRYPTO_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ""];
    if (namedCurve === undefined) throw new Error(`cannot sign with an EC key on curve ${key.asymmetricKeyDetails?.namedCurve ?? "unknown"}`);
    const algorithm = { name: "ECDSA", hash: "SHA-256" };
    return { key: await webcrypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve }, false, ["sign"]), algorithm };
  }
  if (isRsa(key)) {
    const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    return { key: await webcrypto.subtle.importKey("pkcs8", der, algorithm, false, ["sign"]), algorithm };
  }
  throw new Error(`cannot sign with a ${key.asymmetricKeyType ?? "unknown"} key`);
}

const WEB_CRYPTO_CURVES: Readonly<Record<string, string>> = { prime256v1: "P-256", secp384r1: "P-384" };

function isRsa(key: KeyObject): boolean {
  return key.asymmetricKeyType === "rsa";
}

function spkiDer(publicKeyPem: string): ArrayBuffer {
  const der = createPublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

/** PEM with LF line ends and a final newline, like Node's own PEM. */
function pemOf(cert: X509.X509Certificate): string {
  const pem = cert.toString("pem").replace(/\r\n/g, "\n");
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}

/** 16 random bytes as hex, positive (top bit clear) and never starting with a zero byte. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString("hex");
}
