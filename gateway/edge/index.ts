/**
 * The checks every public request passes before any protocol handler sees it, on both ports:
 * CORS (preflights answered here), the body size limit and the per-client rate limit.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { checkDeclaredLength } from "./body-limit.js";
import { applyCors, type CorsPolicy } from "./cors.js";
import { createRateLimiter, type RateLimitPolicy } from "./rate-limit.js";
import { refuse } from "./reject.js";

export interface EdgePolicy {
  readonly cors: CorsPolicy;
  readonly rateLimit: RateLimitPolicy;
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number;
}

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** `next` behind the edge checks. */
export function withEdge(policy: EdgePolicy, next: NodeHandler): NodeHandler {
  const limit = createRateLimiter(policy.rateLimit);
  return (req, res) => {
    if (applyCors(req, res, policy.cors)) return;
    const oversized = checkDeclaredLength(req, policy.maxBodyBytes);
    if (oversized) {
      refuse(req, res, oversized);
      return;
    }
    limit(req).then(
      (refusal) => (refusal ? refuse(req, res, refusal) : next(req, res)),
      () => next(req, res),
    );
  };
}
