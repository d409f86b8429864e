/**
 * Bearer tokens of the public API: HS256 JWTs whose `sub` names the calling account.
 */
import { jwtVerify, SignJWT } from "jose";

export const TOKEN_ISSUER = "dronedelivery-gateway";
const ALGORITHM = "HS256";

function key(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
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
    .sign(key(secret));
}

/** The account a valid token names; throws when the token is malformed, forged or expired. */
export async function verifyToken(token: string, secret: string): Promise<string> {
  const { payload } = await jwtVerify(token, key(secret), { algorithms: [ALGORITHM], issuer: TOKEN_ISSUER });
  if (typeof payload.sub !== "string" || payload.sub === "") throw new Error("the token names no account");
  return payload.sub;
}
