/**
 * The per-client rate limit: each client may make `requests` calls per `windowSeconds`; beyond
 * that it gets 429 (gRPC: RESOURCE_EXHAUSTED) with `Retry-After`. A client is its bearer token
 * (hashed, so a caller cannot spend another account's allowance by naming it in a forged token),
 * or its address when it sends none.
 *
 * With `shared` (the gateway connects to NATS), the allowance is one for all gateway instances
 * together, counted in a NATS KV bucket (shared-rate-limit.ts); while that bucket cannot be
 * reached, and without NATS, each instance counts alone in memory (rate-limiter-flexible).
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Code } from "@connectrpc/connect";
import type { Logger } from "pino";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Refusal } from "./reject.js";
import { sharedWindowLimiter, type Decision, type SharedCounter } from "./shared-rate-limit.js";

export interface RateLimitPolicy {
  /** Calls allowed per window and client; 0 turns the limit off. */
  readonly requests: number;
  readonly windowSeconds: number;
  /** The counters shared by the gateway instances, while reachable (see shared-rate-limit.ts). */
  readonly shared?: (() => SharedCounter | undefined) | undefined;
  readonly log?: Logger | undefined;
}

export type RateLimiter = (req: IncomingMessage) => Promise<Refusal | undefined>;

/** The client a request counts against. */
export function clientKey(req: IncomingMessage): string {
  const match = /^Bearer\s+(\S+)$/i.exec((req.headers.authorization ?? "").trim());
  if (match?.[1]) return tokenKey(match[1]);
  return `address:${req.socket.remoteAddress ?? "unknown"}`;
}

/** Keys of recently seen tokens: a client sends the same token on every request. Bounded. */
const tokenKeys = new Map<string, string>();
const MAX_TOKEN_KEYS = 1_000;

/** A token's key: a hash of it, so that the limiter's memory holds no token. */
function tokenKey(token: string): string {
  let key = tokenKeys.get(token);
  if (key === undefined) {
    key = `token:${createHash("sha256").update(token).digest("base64url").slice(0, 22)}`;
    if (tokenKeys.size >= MAX_TOKEN_KEYS) tokenKeys.clear();
    tokenKeys.set(token, key);
  }
  return key;
}

/** One instance's count in memory. */
function memoryLimiter(policy: RateLimitPolicy): (client: string) => Promise<Decision> {
  const limiter = new RateLimiterMemory({ points: policy.requests, duration: policy.windowSeconds });
  return async (client) => {
    try {
      await limiter.consume(client);
      return { admitted: true };
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return { admitted: false, msBeforeNext: rejection.msBeforeNext };
    }
  };
}

export function createRateLimiter(policy: RateLimitPolicy): RateLimiter {
  if (policy.requests <= 0) return async () => undefined;
  const local = memoryLimiter(policy);
  const decide = policy.shared
    ? sharedWindowLimiter({ requests: policy.requests, windowSeconds: policy.windowSeconds, counter: policy.shared, local, log: policy.log })
    : local;
  return async (req) => {
    const decision = await decide(clientKey(req));
    if (decision.admitted) return undefined;
    const retryAfter = Math.max(1, Math.ceil(decision.msBeforeNext / 1000));
    return {
      httpStatus: 429,
      code: Code.ResourceExhausted,
      message: `rate limit of ${policy.requests} requests per ${policy.windowSeconds} s exceeded; retry in ${retryAfter} s`,
      headers: { "retry-after": String(retryAfter) },
    };
  };
}
