/**
 * ListDrones page tokens: opaque to callers, base64url of `{"v":1,"after":<last drone id>,"status":<filter>}`.
 * A token is valid only with the status filter it was issued for, and only if it decodes to that
 * shape with a well-formed drone id.
 */
import { MAX_ID_LENGTH, TOKEN_ID_PATTERN } from "../../lib/validation/ids.js";

interface PageCursor {
  readonly after: string;
  readonly status: number;
}

const VERSION = 1;

export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify({ v: VERSION, after: cursor.after, status: cursor.status }), "utf8").toString("base64url");
}

/** Why a token is refused, or the cursor it carries. */
export type DecodedPageToken = { ok: true; cursor: PageCursor } | { ok: false; reason: string };

export function decodePageToken(token: string, status: number): DecodedPageToken {
  const invalid = { ok: false, reason: "is not a page token issued by ListDrones" } as const;
  if (!/^[A-Za-z0-9_-]+$/.test(token) || token.length > 1024) return invalid;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    return invalid;
  }
  if (typeof parsed !== "object" || parsed === null) return invalid;
  const { v, after, status: tokenStatus } = parsed as Record<string, unknown>;
  if (v !== VERSION || typeof after !== "string" || typeof tokenStatus !== "number") return invalid;
  if (after.length === 0 || after.length > MAX_ID_LENGTH || !TOKEN_ID_PATTERN.test(after)) return invalid;
  if (tokenStatus !== status) return { ok: false, reason: "was issued for another status filter" };
  return { ok: true, cursor: { after, status: tokenStatus } };
}
