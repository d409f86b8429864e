/**
 * Bad input is the caller's fault: a request the router cannot decode answers INVALID_ARGUMENT
 * (HTTP 400), never INTERNAL (HTTP 500), which means a bug of the platform.
 *
 * connect-es raises two kinds of decoding failure as INTERNAL:
 *  - a binary message that does not decode (`parse binary: ...`, from
 *    `createBinarySerialization` in @connectrpc/connect/protocol/serialization), whether it came
 *    in a Connect binary body, a Connect GET `message` with `base64=1`, or a gRPC / gRPC-Web /
 *    Connect-streaming envelope;
 *  - a Connect GET whose `message` is not base64 with `base64=1` (the decoder throws a plain
 *    `Error`, which the Connect handler turns into `internal error`).
 * and connect-node raises a request body it cannot decompress as INTERNAL (`decompression failed`)
 * unless zlib names the fault, and a compression it does not know as UNIMPLEMENTED (HTTP 501).
 * All of this happens before any interceptor runs, so the gateway handles it in the router's
 * request gate, which every protocol runs with the call's context before the body is read:
 *  - a GET's query is checked there and a bad `message` refused at once;
 *  - for bodies, the gate wraps the context's `abort`: every protocol handler aborts the call's
 *    context with its error before it turns the error into a status (the Connect unary handler in
 *    its catch, the streaming ones in their final transform), so the wrapper sees the decoding
 *    error first and re-labels exactly those errors, by their message, as INVALID_ARGUMENT.
 * Failures of the platform itself keep their code: only errors connect-es raises for the
 * request's own bytes are re-labelled. (An unknown compression stays UNIMPLEMENTED over gRPC,
 * whose specification asks for it; over Connect and gRPC-Web it is a 400.)
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

interface DecodingError {
  readonly code: Code;
  readonly prefix: string;
  readonly describe: (rest: string) => string;
  /** Protocols where the error stays as it is (their specification asks for its code). */
  readonly keepFor?: readonly string[];
}

/** The errors connect-es and connect-node raise for a request's own bytes, by code and message. */
const REQUEST_DECODING_ERRORS: readonly DecodingError[] = [
  { code: Code.Internal, prefix: "parse binary: ", describe: (rest) => `the request message could not be decoded: ${rest}` },
  {
    code: Code.Internal,
    prefix: "received compressed envelope, but do not know how to decompress",
    describe: () => "the request message is marked compressed but names no encoding",
  },
  { code: Code.Internal, prefix: "decompression failed", describe: () => "the request body could not be decompressed" },
  { code: Code.Unimplemented, prefix: "unknown compression ", describe: (rest) => `unknown compression ${rest}`, keepFor: ["grpc"] },
];

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** True when `text` is base64 (standard or URL alphabet, padding optional) the decoder accepts. */
export function isBase64(text: string): boolean {
  return BASE64.test(text) && text.replace(/=+$/, "").length % 4 !== 1;
}

/** Re-labels a request decoding error as INVALID_ARGUMENT, in place; true when it was one. */
export function relabelDecodingError(error: unknown, protocolName = ""): boolean {
  if (!(error instanceof ConnectError)) return false;
  for (const { code, prefix, describe, keepFor } of REQUEST_DECODING_ERRORS) {
    if (error.code !== code || !error.rawMessage.startsWith(prefix) || keepFor?.includes(protocolName)) continue;
    const rawMessage = describe(error.rawMessage.slice(prefix.length));
    // The handler reads the code and message of this very object once the abort has run.
    Object.assign(error as { code: Code; rawMessage: string; message: string }, {
      code: Code.InvalidArgument,
      rawMessage,
      message: new ConnectError(rawMessage, Code.InvalidArgument).message,
    });
    return true;
  }
  return false;
}

/** A UTF-16 code unit of a surrogate pair standing alone (not text: it cannot be URI-encoded). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Makes an error's message well-formed text, in place: a message quoting the caller's input may
 * hold lone surrogates, which the gRPC trailer (`grpc-message`, percent-encoded) cannot carry,
 * and the call would end without its status. Each is replaced by U+FFFD.
 */
export function wellFormedMessage(error: unknown): void {
  if (!(error instanceof ConnectError)) return;
  LONE_SURROGATE.lastIndex = 0;
  if (!LONE_SURROGATE.test(error.rawMessage)) return;
  const rawMessage = error.rawMessage.replace(LONE_SURROGATE, "\uFFFD");
  Object.assign(error as { rawMessage: string; message: string }, {
    rawMessage,
    message: new ConnectError(rawMessage, error.code).message,
  });
}

/** The Connect GET query's refusal, if its message cannot be what it claims to be. */
function checkGetQuery(url: string): ConnectError | undefined {
  let query: URLSearchParams;
  try {
    query = new URL(url, "http://gateway").searchParams;
  } catch {
    return new ConnectError("the request URL is malformed", Code.InvalidArgument);
  }
  if (query.get("base64") === "1" && !isBase64(query.get("message") ?? "")) {
    return new ConnectError("the `message` query parameter is not base64 (`base64=1`)", Code.InvalidArgument);
  }
  return undefined;
}

/** The router's request gate: GET queries checked, body decoding errors re-labelled. */
export function badInputGate(ctx: HandlerContext): void {
  if (ctx.requestMethod === "GET") {
    const refusal = checkGetQuery(ctx.url);
    if (refusal) throw refusal;
  }
  // The context handlers create is a controller with `abort` (HandlerContextController, not
  // exported); the gate receives that very object.
  const controller = ctx as HandlerContext & { abort?: (reason?: unknown) => void };
  if (typeof controller.abort !== "function") return;
  const abort = controller.abort.bind(ctx);
  controller.abort = (reason?: unknown) => {
    relabelDecodingError(reason, ctx.protocolName);
    wellFormedMessage(reason);
    abort(reason);
  };
}
