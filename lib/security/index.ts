// Public API of interservice security: the development PKI, mutual-TLS credentials, the caller
// identity of an incoming call, and per-method authorization.

export {
  DEFAULT_PKI_DIR,
  ensureDevPki,
  type DevPki,
  type DevPkiOptions,
  type IdentityFiles,
  type PkiChange,
} from "./dev-pki.js";
export type { IdentityMaterial } from "./pki-files.js";
export {
  DEV_TLS_CHANNEL_OPTIONS,
  PkiLoadError,
  channelCredentials,
  loadIdentity,
  pkiDir,
  serverCredentials,
  tlsEnabled,
  type ChannelCredentialsOptions,
  type LoadIdentityOptions,
} from "./credentials.js";
export {
  EXTERNAL_TLS_VARIABLES,
  ExternalTlsError,
  devPkiDnsNames,
  hostsOf,
  loadExternalIdentity,
  loadInternalTls,
  readInternalTlsSettings,
  serverNameOptions,
  type ExternalTlsFiles,
  type InternalTls,
  type InternalTlsSettings,
} from "./tls-config.js";
export {
  OPERATOR_IDENTITY,
  PKI_IDENTITIES,
  SERVICE_IDENTITIES,
  TRUST_DOMAIN,
  identityFromSpiffeId,
  isIdentityName,
  spiffeId,
  type Identity,
  type ServiceIdentity,
} from "./identities.js";
export { callerIdentity, identityFromCertificate, isVerifiedTls, type AuthContextSource, type CallAuthContext } from "./peer-identity.js";
export {
  ANY_AUTHENTICATED,
  AUTHORIZATION_TABLE,
  PUBLIC_API_PACKAGE_PREFIX,
  allowedCallers,
  authorize,
  isPublicService,
  type AllowedCallers,
  type AuthorizationDecision,
  type MethodRules,
} from "./authorization.js";
export { authorizationInterceptor, type AuthorizationInterceptorOptions, type Denial } from "./authorization-interceptor.js";
