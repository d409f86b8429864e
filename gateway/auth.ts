/**
 * Authentication of every call: a server interceptor verifies the bearer token and stores the
 * account it names and its roles in the call's context values, where handlers read them.
 */
import {
  Code,
  ConnectError,
  createContextKey,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { ID_PATTERN, MAX_ID_LENGTH } from "../lib/validation/ids.js";
import { verifyCallerNow, type Role, type VerifiedToken } from "./tokens.js";

const ACCOUNT = createContextKey<string>("", { description: "authenticated account" });
const ROLES = createContextKey<readonly Role[]>([], { description: "roles of the authenticated caller" });

/** The caller a valid bearer token names: its account and roles. */
export type Caller = VerifiedToken;

/**
 * The account named by a valid `Authorization: Bearer <jwt>` header; Unauthenticated otherwise
 * (also for a token without `exp` or living longer than `maxLifetimeS`).
 */
export async function authenticate(headers: Headers, secret: string, maxLifetimeS?: number): Promise<string> {
  return authenticateNow(headers, secret, maxLifetimeS);
}

/** `authenticate`, synchronously: the account, or a thrown Unauthenticated ConnectError. */
export function authenticateNow(headers: Headers, secret: string, maxLifetimeS?: number): string {
  return authenticateCallerNow(headers, secret, maxLifetimeS).account;
}

/**
 * The account and roles of a valid `Authorization: Bearer <jwt>` header, or a thrown
 * Unauthenticated ConnectError (also for a malformed `roles` claim).
 */
export function authenticateCallerNow(headers: Headers, secret: string, maxLifetimeS?: number): Caller {
  const header = headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!match?.[1]) throw new ConnectError("a bearer token is required", Code.Unauthenticated);
  let caller: Caller;
  try {
    caller = verifyCallerNow(match[1], secret, maxLifetimeS);
  } catch {
    throw new ConnectError("the bearer token is invalid or expired", Code.Unauthenticated);
  }
  if (caller.account.length > MAX_ID_LENGTH || !ID_PATTERN.test(caller.account)) {
    throw new ConnectError("the bearer token is invalid or expired", Code.Unauthenticated);
  }
  return caller;
}

/** Records the authenticated account in a call's context values, where handlers read it. */
export function setAccount(values: ContextValues, account: string): void {
  values.set(ACCOUNT, account);
}

/** Records the authenticated caller (account and roles) in a call's context values. */
export function setCaller(values: ContextValues, caller: Caller): void {
  values.set(ACCOUNT, caller.account);
  values.set(ROLES, caller.roles);
}

/** Rejects calls without a valid `Authorization: Bearer <jwt>` header with Unauthenticated. */
export function authInterceptor(secret: string, maxLifetimeS?: number): Interceptor {
  return (next) => async (req) => {
    setCaller(req.contextValues, authenticateCallerNow(req.header, secret, maxLifetimeS));
    return next(req);
  };
}

/** The account the call is made for. */
export function accountOf(ctx: HandlerContext): string {
  const account = ctx.values.get(ACCOUNT);
  if (account === "") throw new ConnectError("a bearer token is required", Code.Unauthenticated);
  return account;
}

/** The roles of the caller; empty for a customer token. */
export function rolesOf(ctx: HandlerContext): readonly Role[] {
  return ctx.values.get(ROLES);
}

/** Refuses a caller without `role` with PermissionDenied (REST: 403). */
export function requireRole(ctx: HandlerContext, role: Role): void {
  accountOf(ctx);
  if (!rolesOf(ctx).includes(role)) {
    throw new ConnectError(`${ctx.method.name} is for callers with the ${role} role; this bearer token does not have it`, Code.PermissionDenied);
  }
}
