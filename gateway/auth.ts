/**
 * Authentication of every call: a server interceptor verifies the bearer token and stores the
 * account it names in the call's context values, where handlers read it.
 */
import {
  Code,
  ConnectError,
  createContextKey,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { ID_PATTERN, MAX_ID_LENGTH } from "../lib/validation/violations.js";
import { verifyTokenNow } from "./tokens.js";

const ACCOUNT = createContextKey<string>("", { description: "authenticated account" });

/**
 * The account named by a valid `Authorization: Bearer <jwt>` header; Unauthenticated otherwise
 * (also for a token without `exp` or living longer than `maxLifetimeS`).
 */
export async function authenticate(headers: Headers, secret: string, maxLifetimeS?: number): Promise<string> {
  return authenticateNow(headers, secret, maxLifetimeS);
}

/** `authenticate`, synchronously: the account, or a thrown Unauthenticated ConnectError. */
export function authenticateNow(headers: Headers, secret: string, maxLifetimeS?: number): string {
  const header = headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!match?.[1]) throw new ConnectError("a bearer token is required", Code.Unauthenticated);
  let account: string;
  try {
    account = verifyTokenNow(match[1], secret, maxLifetimeS);
  } catch {
    throw new ConnectError("the bearer token is invalid or expired", Code.Unauthenticated);
  }
  if (account.length > MAX_ID_LENGTH || !ID_PATTERN.test(account)) {
    throw new ConnectError("the bearer token is invalid or expired", Code.Unauthenticated);
  }
  return account;
}

/** Records the authenticated account in a call's context values, where handlers read it. */
export function setAccount(values: ContextValues, account: string): void {
  values.set(ACCOUNT, account);
}

/** Rejects calls without a valid `Authorization: Bearer <jwt>` header with Unauthenticated. */
export function authInterceptor(secret: string, maxLifetimeS?: number): Interceptor {
  return (next) => async (req) => {
    setAccount(req.contextValues, await authenticate(req.header, secret, maxLifetimeS));
    return next(req);
  };
}

/** The account the call is made for. */
export function accountOf(ctx: HandlerContext): string {
  const account = ctx.values.get(ACCOUNT);
  if (account === "") throw new ConnectError("a bearer token is required", Code.Unauthenticated);
  return account;
}
