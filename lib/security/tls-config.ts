/**
 * Where a process's interservice TLS material comes from, read from the environment:
 *
 *   INTERNAL_TLS                 on (default) or off (see credentials.ts)
 *   INTERNAL_TLS_CA_FILE         \
 *   INTERNAL_TLS_CERT_FILE        } certificates from an external CA (cert-manager, a SPIFFE
 *   INTERNAL_TLS_KEY_FILE        /  issuer): the CA bundle to trust, the process's certificate
 *                                   (chain) and key, PEM. All three or none.
 *   INTERNAL_PKI_DIR             without them: the development PKI's folder (default .run/pki)
 *   INTERNAL_PKI_DNS_NAMES       DNS names the development certificates carry besides
 *                                localhost, comma-separated, `{identity}` standing for the
 *                                identity: `{identity}.dronedelivery.svc`
 *   INTERNAL_PKI_NAMESPACE       shorthand: the names of a Kubernetes Service named after the
 *                                identity in that namespace (`delivery`, `delivery.<ns>`,
 *                                `delivery.<ns>.svc`, `delivery.<ns>.svc.cluster.local`)
 *
 * Whatever the source, the identity is the certificate's SPIFFE ID
 * (`spiffe://dronedelivery.local/<identity>`): an external certificate that does not carry the
 * process's own is refused at start, and callers are identified by theirs (peer-identity.ts).
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import type { ChannelOptions } from "@grpc/grpc-js";
import { ConfigError, type Env } from "../service/config.js";
import { DEV_TLS_CHANNEL_OPTIONS, pkiDir, tlsEnabled } from "./credentials.js";
import { ensureDevPki } from "./dev-pki.js";
import { spiffeId } from "./identities.js";
import type { IdentityMaterial } from "./pki-files.js";
import { uriSubjectAltNames } from "./subject-alt-names.js";

/** The PEM files of an external CA's certificates. */
export interface ExternalTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export type InternalTlsSettings =
  | { readonly enabled: false }
  | { readonly enabled: true; readonly source: "files"; readonly files: ExternalTlsFiles }
  | { readonly enabled: true; readonly source: "dev-pki"; readonly dir: string; readonly dnsNames: (identity: string) => readonly string[] };

export const EXTERNAL_TLS_VARIABLES = ["INTERNAL_TLS_CA_FILE", "INTERNAL_TLS_CERT_FILE", "INTERNAL_TLS_KEY_FILE"] as const;

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The interservice TLS settings of the environment; ConfigError on an incomplete or bad setting. */
export function readInternalTlsSettings(env: Env): InternalTlsSettings {
  if (!tlsEnabled(env)) return { enabled: false };
  // Read by name, each one: test/deploy/manifests.test.ts finds the variables the code reads in it.
  const values = [env.INTERNAL_TLS_CA_FILE, env.INTERNAL_TLS_CERT_FILE, env.INTERNAL_TLS_KEY_FILE].map((value) => value?.trim() ?? "");
  const set = EXTERNAL_TLS_VARIABLES.filter((_, i) => values[i] !== "");
  if (set.length > 0) {
    if (set.length < EXTERNAL_TLS_VARIABLES.length) {
      const missing = EXTERNAL_TLS_VARIABLES.filter((name) => !set.includes(name));
      throw new ConfigError(`${set.join(", ")} set without ${missing.join(", ")}: an external CA needs all three files`);
    }
    const [caFile = "", certFile = "", keyFile = ""] = values;
    return { enabled: true, source: "files", files: { caFile, certFile, keyFile } };
  }
  return { enabled: true, source: "dev-pki", dir: pkiDir(env), dnsNames: devPkiDnsNames(env) };
}

/**
 * The DNS names (besides localhost) a development certificate of an identity carries, from
 * INTERNAL_PKI_DNS_NAMES and INTERNAL_PKI_NAMESPACE; none when both are unset.
 */
export function devPkiDnsNames(env: Env): (identity: string) => readonly string[] {
  const templates = (env.INTERNAL_PKI_DNS_NAMES ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  const namespace = env.INTERNAL_PKI_NAMESPACE?.trim().toLowerCase();
  if (namespace) {
    if (!DNS_NAME.test(namespace) || namespace.includes(".")) throw new ConfigError(`INTERNAL_PKI_NAMESPACE=${namespace} is not a namespace name`);
    templates.push("{identity}", `{identity}.${namespace}`, `{identity}.${namespace}.svc`, `{identity}.${namespace}.svc.cluster.local`);
  }
  for (const template of templates) {
    const sample = template.replaceAll("{identity}", "identity");
    if (!DNS_NAME.test(sample)) throw new ConfigError(`INTERNAL_PKI_DNS_NAMES: "${template}" is not a DNS name (use {identity} for the identity)`);
  }
  const unique = [...new Set(templates)];
  return (identity) => [...new Set(unique.map((template) => template.replaceAll("{identity}", identity)))];
}

export class ExternalTlsError extends Error {
  override readonly name = "ExternalTlsError";
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function certificatesIn(pem: string, file: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ExternalTlsError(`${file} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new ExternalTlsError(`${file}: certificate ${i + 1} cannot be read (${(error as Error).message})`);
    }
  });
}

/**
 * Reads an identity's material issued by an external CA and checks it before any server or
 * client uses it: the key matches the certificate, the certificate names the identity's SPIFFE ID,
 * it is valid now, and a CA of the bundle issued it (directly or through the intermediates that
 * follow it in the certificate file). Throws ExternalTlsError naming the file and the problem.
 */
export async function loadExternalIdentity(files: ExternalTlsFiles, identity: string, now: Date = new Date()): Promise<IdentityMaterial> {
  const read = async (file: string) => {
    try {
      return await readFile(file);
    } catch (error) {
      throw new ExternalTlsError(`cannot read ${file}: ${(error as Error).message}`);
    }
  };
  const [caPem, certPem, keyPem] = await Promise.all([read(files.caFile), read(files.certFile), read(files.keyFile)]);
  const cas = certificatesIn(caPem.toString(), files.caFile);
  const [leaf, ...intermediates] = certificatesIn(certPem.toString(), files.certFile) as [X509Certificate, ...X509Certificate[]];
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new ExternalTlsError(`${files.keyFile}: the key cannot be read (${(error as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) throw new ExternalTlsError(`${files.keyFile} is not the key of the certificate in ${files.certFile}`);
  const wanted = spiffeId(identity);
  const uris = uriSubjectAltNames(leaf.subjectAltName);
  if (!uris.includes(wanted)) {
    throw new ExternalTlsError(`the certificate in ${files.certFile} does not name ${wanted} (its URIs: ${uris.join(", ") || "none"})`);
  }
  if (now < new Date(leaf.validFrom)) throw new ExternalTlsError(`the certificate in ${files.certFile} is not valid before ${leaf.validFrom}`);
  if (now >= new Date(leaf.validTo)) throw new ExternalTlsError(`the certificate in ${files.certFile} expired at ${leaf.validTo}`);
  if (!chainsToCa(leaf, intermediates, cas)) {
    throw new ExternalTlsError(`the certificate in ${files.certFile} was not issued by a CA in ${files.caFile}`);
  }
  return { identity, caPem, certPem, keyPem };
}

/** Whether `cert` was signed by one of `cas`, directly or through `intermediates` (at most 5 deep). */
function chainsToCa(cert: X509Certificate, intermediates: readonly X509Certificate[], cas: readonly X509Certificate[], depth = 0): boolean {
  if (cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) return true;
  if (depth >= 5) return false;
  return intermediates.some(
    (issuer) => issuer.ca && issuer !== cert && cert.checkIssued(issuer) && cert.verify(issuer.publicKey) && chainsToCa(issuer, intermediates, cas, depth + 1),
  );
}

/** A process's interservice TLS: its material, and the channel options a client of an address needs. */
export interface InternalTls {
  readonly source: "files" | "dev-pki";
  readonly material: IdentityMaterial;
  /** Channel options for dialling `address` (see `serverNameOptions`). */
  channelOptions(address: string): ChannelOptions;
}

/**
 * The material of `identity` from the environment's source (external files, else the development
 * PKI, made or renewed as needed with the configured DNS names); undefined when INTERNAL_TLS=off.
 */
export async function loadInternalTls(env: Env, identity: string): Promise<InternalTls | undefined> {
  const settings = readInternalTlsSettings(env);
  if (!settings.enabled) return undefined;
  if (settings.source === "files") {
    const material = await loadExternalIdentity(settings.files, identity);
    return { source: "files", material, channelOptions: (address) => serverNameOptions(address, "files") };
  }
  const pki = await ensureDevPki(settings.dir, [identity], { dnsNames: settings.dnsNames });
  return { source: "dev-pki", material: pki.material(identity), channelOptions: (address) => serverNameOptions(address, "dev-pki") };
}

/** The hosts an address names: `host:port`, `[v6]:port`, lists of them, `dns:`/`ipv4:`/`ipv6:` targets. */
export function hostsOf(address: string): string[] {
  const target = address.trim().replace(/^(dns|ipv4|ipv6):(\/\/[^/]*\/)?/, "");
  return target
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => {
      const bracketed = /^\[([^\]]+)\](:\d+)?$/.exec(part);
      if (bracketed) return bracketed[1] ?? part;
      return isIP(part) === 6 ? part : part.replace(/:\d+$/, "");
    });
}

/**
 * Which name a client checks the server's certificate for. A DNS name dialled (in a cluster,
 * `delivery.dronedelivery.svc:7055`) is checked as it is: grpc-js sends it as TLS server name and
 * the certificate must carry it. An address of IP literals or localhost (the development setup,
 * lists of loopback instances) is checked against "localhost" when the certificates come from
 * the development PKI, which names it in every certificate; certificates from an external CA
 * dialled by IP must carry that IP address. The SPIFFE identity of the server is checked on top
 * (`channelCredentials(..., { expectedServer })`).
 */
export function serverNameOptions(address: string, source: "files" | "dev-pki"): ChannelOptions {
  if (source !== "dev-pki") return {};
  const hosts = hostsOf(address);
  const loopbackOrIp = hosts.length > 0 && hosts.every((host) => host === "localhost" || isIP(host) !== 0);
  return loopbackOrIp ? DEV_TLS_CHANNEL_OPTIONS : {};
}
