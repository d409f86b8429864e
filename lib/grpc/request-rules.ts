// The binding's boundary check: every request a service receives keeps the field rules its
// contract declares before the handler sees it (../validation/rules.ts), or the call answers
// INVALID_ARGUMENT with a google.rpc.BadRequest naming each field at fault.

import type { DescMethod, Message } from "@bufbuild/protobuf";
import { refuseRuleViolations } from "../validation/rules.js";

type AnyHandler = (...args: unknown[]) => unknown;

/** Each request of a stream, checked as it is read; the first one that breaks a rule ends it. */
async function* checkedStream(method: DescMethod, requests: AsyncIterable<unknown>): AsyncGenerator<unknown, void, undefined> {
  for await (const request of requests) {
    refuseRuleViolations(method.input, request as Message);
    yield request;
  }
}

/**
 * `handler` behind the rules of `method`'s request: a unary or server-streaming request is
 * checked before the handler runs (a refusal is thrown synchronously, as the handler's own
 * would be), a streamed request as it is read.
 */
export function withRequestRules(method: DescMethod, handler: AnyHandler): AnyHandler {
  if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
    return (requests, ...rest) => handler(checkedStream(method, requests as AsyncIterable<unknown>), ...rest);
  }
  return (request, ...rest) => {
    refuseRuleViolations(method.input, request as Message);
    return handler(request, ...rest);
  };
}
