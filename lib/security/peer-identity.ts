/**
 * The identity of the caller of an incoming grpc-js call, from the client certificate that TLS
 * verified. grpc-js gives every server call (and every server interceptor's call) an auth
 * context: `transportSecurityType` is "ssl" and `sslPeerCertificate` is set only for a TLS
 * connection whose peer certificate was verified; a plaintext call has neither.
 */
import type { PeerCertificate } from "node:tls";
import { identityFromSpiffeId, isIdentityName } from "./identities.js";
import { uriSubjectAltNames } from "./subject-alt-names.js";

/** What grpc-js returns from `getAuthContext()` (not exported by its index). */
export interface CallAuthContext {
  readonly transportSecurityType?: string;
  readonly sslPeerCertificate?: PeerCertificate;
}

/** A server call, or the call a server interceptor sees. */
export interface AuthContextSource {
  getAuthContext(): CallAuthContext | null;
}

/** The verified caller's identity; undefined on a plaintext connection or without a usable name. */
export function callerIdentity(call: AuthContextSource): string | undefined {
  const context = call.getAuthContext();
  if (context?.transportSecurityType !== "ssl" || context.sslPeerCertificate === undefined) return undefined;
  return identityFromCertificate(context.sslPeerCertificate);
}

/** Whether the call came over a TLS connection whose client certificate was verified. */
export function isVerifiedTls(call: AuthContextSource): boolean {
  const context = call.getAuthContext();
  return context?.transportSecurityType === "ssl" && context.sslPeerCertificate !== undefined;
}

/**
 * The identity a certificate names: its SPIFFE ID in this trust domain, else (for a certificate
 * with no SPIFFE ID at all) its common name. A certificate whose SPIFFE IDs are all of another
 * trust domain names no identity here.
 */
export function identityFromCertificate(cert: Pick<PeerCertificate, "subject" | "subjectaltname">): string | undefined {
  const spiffeIds = uriSubjectAltNames(cert.subjectaltname).filter((uri) => uri.startsWith("spiffe://"));
  if (spiffeIds.length > 0) {
    const identities = new Set(spiffeIds.map(identityFromSpiffeId).filter((id) => id !== undefined));
    return identities.size === 1 ? [...identities][0] : undefined;
  }
  const commonName: unknown = cert.subject?.CN;
  const name = Array.isArray(commonName) ? (commonName.length === 1 ? commonName[0] : undefined) : commonName;
  return typeof name === "string" && isIdentityName(name) ? name : undefined;
}
