/**
 * Bearer tokens of the public API: HS256 JWTs whose `sub` names the calling account.
 */
import { webcrypto } from "node:crypto";
import { jwtVerify, SignJWT } from "jose";

type CryptoKey = webcrypto.CryptoKey;

export const TOKEN_ISSUER = "dronedelivery-gateway";
const ALGORITHM = "HS256";

/** How many secrets' keys are kept imported; more (e.g. a test minting with many) start over. */
const MAX_CACHED_KEYS = 16;
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * The HMAC key of `secret`, imported once per secret and reused by every token check (importing
 * a key is a WebCrypto job of its own). A failed import is not kept.
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

/** A token for `accountId`, valid for `ttlSeconds`. */
export async function mintToken(accountId: string, secret: string, ttlSeconds = 3600): Promise<string> {
  if (accountId.trim() === "") throw new Error("an account id is required");
  return new SignJWT({})
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
    .setSubject(accountId)
    .setIssuer(TOKEN_ISSUER)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(await key(secret));
}

/** The longest lifetime a token may have by default: 24 h. */
export const DEFAULT_MAX_TOKEN_LIFETIME_S = 24 * 3600;

/**
 * The account a valid token names; throws when the token is malformed, forged or expired, has no
 * `exp`, or lives longer than `maxLifetimeS` (`exp - iat`, or `exp - now` without `iat`), so that a
 * leaked token is never good for long.
 */
export async function verifyToken(token: string, secret: string, maxLifetimeS = DEFAULT_MAX_TOKEN_LIFETIME_S): Promise<string> {
  const { payload } = await jwtVerify(token, await key(secret), {
    algorithms: [ALGORITHM],
    issuer: TOKEN_ISSUER,
    requiredClaims: ["exp"],
  });
  if (typeof payload.exp !== "number") throw new Error("the token has no expiry");
  const from = typeof payload.iat === "number" ? payload.iat : Math.floor(Date.now() / 1000);
  if (payload.exp - from > maxLifetimeS) throw new Error(`the token lives longer than ${maxLifetimeS} s`);
  if (typeof payload.sub !== "string" || payload.sub === "") throw new Error("the token names no account");
  return payload.sub;
}
