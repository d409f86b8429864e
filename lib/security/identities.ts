/**
 * The identities that take part in interservice calls, and how an identity is written in a
 * certificate: as the subject's common name and as a SPIFFE ID
 * `spiffe://dronedelivery.local/<identity>` in the subject alternative names.
 */
import { PLATFORM_REGISTRY, type Registry, type ServiceName } from "../service/registry.js";

/** The trust domain of every SPIFFE ID the development CA issues. */
export const TRUST_DOMAIN = "dronedelivery.local";

/** Local tooling (the `make run` health probes, test harnesses, grpcurl by hand). */
export const OPERATOR_IDENTITY = "operator";

/** A service of the platform, or the public gateway. */
export type ServiceIdentity = ServiceName | "gateway";

/** Anyone the development CA issues a certificate to. */
export type Identity = ServiceIdentity | typeof OPERATOR_IDENTITY;

/** The identity of every process of a registry (every service, then the gateway), in its order. */
export function serviceIdentities(registry: Registry): string[] {
  return registry.map((entry) => entry.name);
}

/** Every identity the PKI issues for a registry: its processes and the operator. */
export function pkiIdentities(registry: Registry): string[] {
  return [...serviceIdentities(registry), OPERATOR_IDENTITY];
}

/** Every service and the gateway (lib/service/registry.ts). */
export const SERVICE_IDENTITIES = serviceIdentities(PLATFORM_REGISTRY) as readonly ServiceIdentity[];

/** What `ensureDevPki` makes by default: every service, the gateway and the operator. */
export const PKI_IDENTITIES = pkiIdentities(PLATFORM_REGISTRY) as readonly Identity[];

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
