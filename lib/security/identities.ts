/**
 * The identities that take part in interservice calls, and how an identity is written in a
 * certificate: as the subject's common name and as a SPIFFE ID
 * `spiffe://dronedelivery.local/<identity>` in the subject alternative names.
 */
import { DEFAULT_PORTS, type ServiceName } from "../service/ports.js";

/** The trust domain of every SPIFFE ID the development CA issues. */
export const TRUST_DOMAIN = "dronedelivery.local";

/** Local tooling (the `make run` health probes, test harnesses, grpcurl by hand). */
export const OPERATOR_IDENTITY = "operator";

/** A service of the platform, or the public gateway. */
export type ServiceIdentity = ServiceName | "gateway";

/** Anyone the development CA issues a certificate to. */
export type Identity = ServiceIdentity | typeof OPERATOR_IDENTITY;

/** Every service (lib/service/ports.ts) and the gateway. */
export const SERVICE_IDENTITIES: readonly ServiceIdentity[] = [...(Object.keys(DEFAULT_PORTS) as ServiceName[]), "gateway"];

/** What `ensureDevPki` makes by default: every service, the gateway and the operator. */
export const PKI_IDENTITIES: readonly Identity[] = [...SERVICE_IDENTITIES, OPERATOR_IDENTITY];

const IDENTITY_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * Whether `name` can be an identity: lower-case letters, digits and dashes, starting with a
 * letter. It names files in the PKI folder, so nothing else is allowed; "ca" is the CA's own.
 */
export function isIdentityName(name: string): boolean {
  return IDENTITY_PATTERN.test(name) && name !== "ca";
}

/** `spiffe://dronedelivery.local/<identity>` */
export function spiffeId(identity: string): string {
  return `spiffe://${TRUST_DOMAIN}/${identity}`;
}

/**
 * The identity in a SPIFFE ID of this trust domain, e.g. "drone" for
 * `spiffe://dronedelivery.local/drone`; undefined for any other URI.
 */
export function identityFromSpiffeId(uri: string): string | undefined {
  const prefix = `spiffe://${TRUST_DOMAIN}/`;
  if (!uri.startsWith(prefix)) return undefined;
  const name = uri.slice(prefix.length);
  return isIdentityName(name) ? name : undefined;
}
