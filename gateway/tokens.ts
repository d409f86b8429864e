/**
 * Bearer tokens of the public API: HS256 JWTs whose `sub` names the calling account and whose
 * optional `roles` claim (an array of strings) grants roles beyond a customer's: `operator` is the
 * only one known today; unknown roles are ignored, a `roles` claim that is not an array of strings
 * makes the token invalid.
 */
import { createHmac, createSecretKey, timingSafeEqual, webcrypto, type KeyObject } from "node:crypto";
import { SignJWT } from "jose";

type CryptoKey = webcrypto.CryptoKey;

export const TOKEN_ISSUER = "dronedelivery-gateway";
const ALGORITHM = "HS256";

/** How many secrets' keys are kept imported; more (e.g. a test minting with many) start over. */
const MAX_CACHED_KEYS = 16;
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * The WebCrypto HMAC key of `secret` for minting, imported once per secret (importing a key is a
 * WebCrypto job of its own). A failed import is not kept.
 */
function key(secret: string): Promise<CryptoKey> {
  const cached = keys.get(secret);
  if (cached) return cached;
  if (keys.size >= MAX_CACHED_KEYS) keys.clear();
  const imported = webcrypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  keys.set(secret, imported);
  imported.catch(() => {
    if (keys.get(secret) === imported) keys.delete(secret);
  });
  return imported;
}

/** The roles the gateway knows; a token's other roles are ignored. */
export const KNOWN_ROLES = ["operator"] as const;
export type Role = (typeof KNOWN_ROLES)[number];

/** Whether `name` is a role the gateway knows. */
export function isKnownRole(name: string): name is Role {
  return (KNOWN_ROLES as readonly string[]).includes(name);
}

/** A token for `accountId`, valid for `ttlSeconds`, with the given roles (none: a customer token). */
export async function mintToken(accountId: string, secret: string, ttlSeconds = 3600, roles: readonly string[] = []): Promise<string> {
  if (accountId.trim() === "") throw new Error("an account id is required");
  return new SignJWT(roles.length > 0 ? { roles: [...roles] } : {})
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
    .setSubject(accountId)
    .setIssuer(TOKEN_ISSUER)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(await key(secret));
}

/** The longest lifetime a token may have by default: 24 h. */
export const DEFAULT_MAX_TOKEN_LIFETIME_S = 24 * 3600;

/** The HMAC keys of the secrets verified with, made once per secret (bounded like `keys`). */
const hmacKeys = new Map<string, KeyObject>();

function hmacKey(secret: string): KeyObject {
  let made = hmacKeys.get(secret);
  if (made === undefined) {
    if (hmacKeys.size >= MAX_CACHED_KEYS) hmacKeys.clear();
    made = createSecretKey(Buffer.from(secret, "utf8"));
    hmacKeys.set(secret, made);
  }
  return made;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The decoded header and payload of recently seen tokens, by their signed part: a client sends
 * the same token on every request, and decoding it (base64url, JSON) costs more than its HMAC.
 * Only decoding is saved: the signature, the header and every claim are still checked on every
 * request. Entries are frozen and the map is bounded (cleared when full).
 */
const decoded = new Map<string, { header: Readonly<Record<string, unknown>>; payload: Readonly<Record<string, unknown>> }>();
const MAX_DECODED = 1_000;

function remember(signingInput: string, header: Readonly<Record<string, unknown>>, payload: Readonly<Record<string, unknown>>): void {
  if (decoded.size >= MAX_DECODED) decoded.clear();
  decoded.set(signingInput, { header: Object.freeze(header), payload: Object.freeze(payload) });
}

/** A JWT part (header or payload): base64url-encoded JSON of an object. */
function decodeObject(part: string, what: string): Readonly<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    throw new Error(`the token's ${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`the token's ${what} is not an object`);
  return value as Record<string, unknown>;
}

/** What a valid token says of its caller. */
export interface VerifiedToken {
  /** The account (`sub`). */
  readonly account: string;
  /** The known roles of its `roles` claim; empty for a customer token. */
  readonly roles: readonly Role[];
}

/** The known roles of a `roles` claim; throws when the claim is present but not an array of strings. */
function rolesOf(claim: unknown): readonly Role[] {
  if (claim === undefined) return [];
  if (!Array.isArray(claim) || !claim.every((r) => typeof r === "string")) throw new Error("the token's roles are not an array of strings");
  return KNOWN_ROLES.filter((role) => (claim as string[]).includes(role));
}

/** `verifyCallerNow`, reduced to the account. */
export function verifyTokenNow(token: string, secret: string, maxLifetimeS = DEFAULT_MAX_TOKEN_LIFETIME_S, nowS = Math.floor(Date.now() / 1000)): string {
  return verifyCallerNow(token, secret, maxLifetimeS, nowS).account;
}

/**
 * The account and roles a valid token names; throws when the token is malformed, forged or expired, has no
 * `exp`, or lives longer than `maxLifetimeS` (`exp - iat`, or `exp - now` without `iat`), so that a
 * leaked token is never good for long. Synchronous: one HMAC-SHA256 (node:crypto) compared in
 * constant time, then the header and claims: `alg` HS256 and no `crit` extension, `iss`, `exp`
 * (required, in the future), `nbf` and `iat` (numbers when present, `nbf` reached), the lifetime,
 * a `sub`, and a `roles` claim that, when present, is an array of strings.
 */
export function verifyCallerNow(token: string, secret: string, maxLifetimeS = DEFAULT_MAX_TOKEN_LIFETIME_S, nowS = Math.floor(Date.now() / 1000)): VerifiedToken {
  const first = token.indexOf(".");
  const second = first < 0 ? -1 : token.indexOf(".", first + 1);
  if (second < 0 || token.indexOf(".", second + 1) >= 0) throw new Error("the token is not a signed JWT (three parts)");
  const headerPart = token.slice(0, first);
  const payloadPart = token.slice(first + 1, second);
  const signaturePart = token.slice(second + 1);
  if (!BASE64URL.test(headerPart) || !BASE64URL.test(payloadPart) || !BASE64URL.test(signaturePart)) {
    throw new Error("the token is not base64url");
  }
  const signingInput = token.slice(0, second);
  const known = decoded.get(signingInput);
  const header = known?.header ?? decodeObject(headerPart, "header");
  if (header["alg"] !== ALGORITHM) throw new Error(`the token is not signed with ${ALGORITHM}`);
  // No extension is understood here, so a token that requires one (`crit`, `b64`) is refused.
  if (header["crit"] !== undefined || header["b64"] !== undefined) throw new Error("the token asks for an unsupported extension");
  const signature = Buffer.from(signaturePart, "base64url");
  const expected = createHmac("sha256", hmacKey(secret)).update(signingInput).digest();
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) throw new Error("the token's signature does not verify");
  const payload = known?.payload ?? decodeObject(payloadPart, "payload");
  if (known === undefined) remember(signingInput, header, payload);
  if (payload["iss"] !== TOKEN_ISSUER) throw new Error("the token is not issued by the gateway");
  const exp = payload["exp"];
  if (typeof exp !== "number" || !Number.isFinite(exp)) throw new Error("the token has no expiry");
  if (exp <= nowS) throw new Error("the token has expired");
  const nbf = payload["nbf"];
  if (nbf !== undefined && (typeof nbf !== "number" || !(nbf <= nowS))) throw new Error("the token is not valid yet");
  const iat = payload["iat"];
  if (iat !== undefined && (typeof iat !== "number" || !Number.isFinite(iat))) throw new Error("the token's iat is not a number");
  const from = typeof iat === "number" ? iat : nowS;
  if (exp - from > maxLifetimeS) throw new Error(`the token lives longer than ${maxLifetimeS} s`);
  const sub = payload["sub"];
  if (typeof sub !== "string" || sub === "") throw new Error("the token names no account");
  return { account: sub, roles: rolesOf(payload["roles"]) };
}

/** `verifyTokenNow`, as a promise (rejected instead of throwing). */
export async function verifyToken(token: string, secret: string, maxLifetimeS = DEFAULT_MAX_TOKEN_LIFETIME_S): Promise<string> {
  return verifyTokenNow(token, secret, maxLifetimeS);
}
