/**
 * grpc-js credentials for mutual TLS from an identity's material, reading that material from a
 * PKI folder, and the environment switch: `INTERNAL_TLS=off` turns interservice TLS (and with it
 * caller authorization) off, for debugging only; it is on by default. `INTERNAL_PKI_DIR` moves
 * the PKI folder (default `.run/pki` at the repository root).
 */
import { X509Certificate } from "node:crypto";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { ConfigError, envString, type Env } from "../service/config.js";
import { DEFAULT_PKI_DIR } from "./dev-pki.js";
import { isIdentityName, spiffeId } from "./identities.js";
import { identityFromCertificate } from "./peer-identity.js";
import { caPaths, caProblem, identityPaths, identityProblem, readPair, type IdentityMaterial } from "./pki-files.js";

/**
 * Whether interservice gRPC uses mutual TLS: `INTERNAL_TLS` unset, "on", "true" or "1" means
 * yes; "off", "false" or "0" means plaintext (debugging only: no caller identity, so no
 * authorization). Any other value is a configuration error.
 */
export function tlsEnabled(env: Env): boolean {
  const raw = env.INTERNAL_TLS?.trim().toLowerCase();
  if (raw === undefined || raw === "" || raw === "on" || raw === "true" || raw === "1") return true;
  if (raw === "off" || raw === "false" || raw === "0") return false;
  throw new ConfigError(`INTERNAL_TLS=${env.INTERNAL_TLS} is neither on nor off`);
}

/** The PKI folder: `INTERNAL_PKI_DIR`, else `<repository>/.run/pki`. */
export function pkiDir(env: Env): string {
  return envString(env, "INTERNAL_PKI_DIR", DEFAULT_PKI_DIR);
}

/**
 * Server credentials that present the identity's certificate and require every client to
 * present a certificate signed by the CA.
 */
export function serverCredentials(material: IdentityMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(material.caPem, [{ cert_chain: material.certPem, private_key: material.keyPem }], true);
}

export interface ChannelCredentialsOptions {
  /**
   * The identity the server must prove, e.g. "drone" for a client of the drone service: the
   * connection is refused when the server's certificate names another. Unset: any identity the
   * CA issued is accepted (the host name or IP address is checked either way).
   */
  readonly expectedServer?: string;
}

/** Channel credentials that trust the CA and present the identity's certificate as client certificate. */
export function channelCredentials(material: IdentityMaterial, options: ChannelCredentialsOptions = {}): grpc.ChannelCredentials {
  const { expectedServer } = options;
  if (expectedServer === undefined) {
    return grpc.credentials.createSsl(material.caPem, material.keyPem, material.certPem);
  }
  return grpc.credentials.createSsl(material.caPem, material.keyPem, material.certPem, {
    checkServerIdentity: (hostname: string, cert: PeerCertificate) => {
      const hostError = checkServerIdentity(hostname, cert);
      if (hostError !== undefined) return hostError;
      const served = identityFromCertificate(cert);
      return served === expectedServer
        ? undefined
        : new Error(`the server at ${hostname} is "${served ?? "unknown"}", not ${spiffeId(expectedServer)}`);
    },
  });
}

/**
 * Channel options for TLS to the development certificates: check the server's certificate for
 * "localhost", which every development certificate names, whatever the address dialled. Without
 * it grpc-js sends an IP address (127.0.0.1) as TLS server name, which Node warns about once per
 * process (DEP0123). The server is still authenticated by the CA, and by `expectedServer`.
 */
export const DEV_TLS_CHANNEL_OPTIONS: grpc.ChannelOptions = { "grpc.ssl_target_name_override": "localhost" };

export interface LoadIdentityOptions {
  /** The clock deciding validity; default the system clock. */
  readonly now?: () => Date;
  /** How long to retry a set that is being replaced by another process. Default 2 s. */
  readonly settleMs?: number;
}

export class PkiLoadError extends Error {
  override readonly name = "PkiLoadError";
}

/**
 * Reads the CA and an identity's certificate and key from `dir` and checks them: the key matches,
 * the CA signed the certificate, it names the identity, and it is valid now. A set that another
 * process is replacing is read again until it is consistent. Throws PkiLoadError, naming the
 * problem, when the files stay unusable: run `ensureDevPki` (or delete the folder) first.
 */
export async function loadIdentity(dir: string, identity: string, options: LoadIdentityOptions = {}): Promise<IdentityMaterial> {
  if (!isIdentityName(identity)) throw new PkiLoadError(`not an identity name: ${JSON.stringify(identity)}`);
  const now = options.now ?? (() => new Date());
  const until = Date.now() + (options.settleMs ?? 2_000);
  for (;;) {
    const [ca, pair] = await Promise.all([readPair(caPaths(dir)), readPair(identityPaths(dir, identity))]);
    const problem = caProblem(ca, now(), 0) ?? identityProblem(pair, identity, ca.cert as X509Certificate, now(), 0);
    if (problem === undefined && ca.certPem !== undefined && pair.certPem !== undefined && pair.keyPem !== undefined) {
      return { identity, caPem: ca.certPem, certPem: pair.certPem, keyPem: pair.keyPem };
    }
    if (Date.now() >= until) throw new PkiLoadError(`cannot use the PKI in ${dir}: ${problem ?? "incomplete"}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
