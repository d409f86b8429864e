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

/** What one call's auth context says about its connection's peer. */
interface Peer {
  readonly verified: boolean;
  readonly identity: string | undefined;
}

/**
 * The peer of each verified TLS connection, by the connection's HTTP/2 session: reading and
 * parsing the peer certificate (`getPeerCertificate`, behind grpc-js's `getAuthContext`) costs
 * more than the rest of the caller check, and a connection's verified certificate cannot change
 * (Node.js refuses TLS renegotiation on HTTP/2 sessions). Only verified peers are kept; an entry
 * goes with its session.
 */
const verifiedPeers = new WeakMap<object, Peer>();

const UNVERIFIED: Peer = { verified: false, identity: undefined };

/** How far `sessionOf` follows a chain of wrapping calls (interceptors, the handler's call). */
const MAX_WRAPPING = 16;

/**
 * The HTTP/2 session a grpc-js server call came over: grpc-js's base server call holds the
 * HTTP/2 stream (`stream.session`); the calls wrapping it (`ServerInterceptingCall.nextCall`, a
 * handler's `call`) lead to it. Undefined when nothing on the way looks like that, in which case
 * every check reads the auth context afresh.
 */
export function sessionOf(call: object): object | undefined {
  let current: unknown = call;
  for (let depth = 0; depth < MAX_WRAPPING && typeof current === "object" && current !== null; depth++) {
    const holder = current as { stream?: { session?: unknown }; nextCall?: unknown; call?: unknown };
    if (typeof holder.stream === "object" && holder.stream !== null) {
      const session = holder.stream.session;
      return typeof session === "object" && session !== null ? session : undefined;
    }
    current = holder.nextCall ?? holder.call;
  }
  return undefined;
}

function peerOf(call: AuthContextSource): Peer {
  const session = sessionOf(call);
  const known = session && verifiedPeers.get(session);
  if (known) return known;
  const context = call.getAuthContext();
  if (context?.transportSecurityType !== "ssl" || context.sslPeerCertificate === undefined) return UNVERIFIED;
  const peer: Peer = { verified: true, identity: identityFromCertificate(context.sslPeerCertificate) };
  if (session) verifiedPeers.set(session, peer);
  return peer;
}

/**
 * The verified caller's identity; undefined on a plaintext connection or without a usable name.
 * Read from the certificate once per connection; callers still decide on every call.
 */
export function callerIdentity(call: AuthContextSource): string | undefined {
  return peerOf(call).identity;
}

/** Whether the call came over a TLS connection whose client certificate was verified. */
export function isVerifiedTls(call: AuthContextSource): boolean {
  return peerOf(call).verified;
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
