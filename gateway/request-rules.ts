/**
 * The public contracts' field rules, checked before a handler runs: a request that breaks one
 * answers INVALID_ARGUMENT (HTTP 400) with a google.rpc.BadRequest naming each field by its path
 * in the public request (`parcels[0].weight_kg`), before anything is called inside. The Connect
 * router runs this interceptor after authentication; the REST endpoint checks the request it
 * transcodes the same way (rest/transcode.ts).
 */
import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { ruleViolations } from "../lib/validation/rules.js";
import { badRequest } from "./rest/bad-request.js";

/** Throws the public INVALID_ARGUMENT of `message` when it breaks a rule of its contract. */
export function refuseInvalidRequest(schema: DescMessage, message: Message): void {
  const violations = ruleViolations(schema, message);
  if (violations.length > 0) throw badRequest(violations);
}

async function* checked(schema: DescMessage, requests: AsyncIterable<Message>): AsyncIterable<Message> {
  for await (const request of requests) {
    refuseInvalidRequest(schema, request);
    yield request;
  }
}

/** Checks every request message (each message of a request stream as it is read). */
export function requestRulesInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) {
      refuseInvalidRequest(req.method.input, req.message);
      return await next(req);
    }
    return await next({ ...req, message: checked(req.method.input, req.message) });
  };
}
