/**
 * Page tokens of ListDeliveries: opaque to callers, but checked here. A token names the owner it
 * was issued for and the index position of the last delivery of its page; the next page starts
 * after that position. Positions are stable (a delivery's creation time and id never change), so
 * deliveries created while a caller pages through do not shift the pages already seen.
 */
import { INDEX_POSITION_RE } from "./keys.js";

const VERSION = 1;
const MAX_TOKEN_LENGTH = 1024;

interface TokenBody {
  v: number;
  owner: string;
  after: string;
}

export function encodePageToken(ownerId: string, afterPosition: string): string {
  const body: TokenBody = { v: VERSION, owner: ownerId, after: afterPosition };
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

/**
 * The position after which the page starts, or a description of why the token is refused: not
 * one this service issued, or issued for another owner.
 */
export function decodePageToken(token: string, ownerId: string): { after: string } | { problem: string } {
  const invalid = { problem: "is not a valid page token" };
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) return invalid;
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    return invalid;
  }
  if (typeof body !== "object" || body === null) return invalid;
  const { v, owner, after } = body as Partial<TokenBody>;
  if (v !== VERSION || typeof owner !== "string" || typeof after !== "string" || !INDEX_POSITION_RE.test(after)) {
    return invalid;
  }
  if (owner !== ownerId) return { problem: "was issued for another owner_id" };
  return { after };
}
