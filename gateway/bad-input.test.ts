// The request gate's pure parts: which decoding errors become INVALID_ARGUMENT, and messages
// that quote broken input made fit for a gRPC trailer.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { isBase64, relabelDecodingError, wellFormedMessage } from "./bad-input.js";

describe("the request gate", () => {
  it("re-labels only the errors connect-es raises for the request's own bytes", () => {
    const undecodable = new ConnectError("parse binary: premature EOF", Code.Internal);
    expect(relabelDecodingError(undecodable, "connect")).toBe(true);
    expect(undecodable.code).toBe(Code.InvalidArgument);
    expect(undecodable.rawMessage).toBe("the request message could not be decoded: premature EOF");
    const platform = new ConnectError("database on fire", Code.Internal);
    expect(relabelDecodingError(platform, "connect")).toBe(false);
    expect(platform.code).toBe(Code.Internal);
    const compression = new ConnectError("unknown compression \"zz\"", Code.Unimplemented);
    expect(relabelDecodingError(compression, "grpc")).toBe(false);
  });

  it("tells base64 from what is not", () => {
    expect(isBase64("CgRhYmNk")).toBe(true);
    expect(isBase64("CgRhYmNk-_")).toBe(true);
    expect(isBase64("not base64!")).toBe(false);
    expect(isBase64("abcde")).toBe(false);
  });

  it("replaces lone surrogates in a message, which a gRPC trailer cannot carry", () => {
    const error = new ConnectError("field \"a\ud800b\" is unknown", Code.InvalidArgument);
    wellFormedMessage(error);
    expect(error.rawMessage).toBe("field \"a\ufffdb\" is unknown");
    expect(() => encodeURIComponent(error.rawMessage)).not.toThrow();
    const fine = new ConnectError("emoji \ud83d\ude80 stays", Code.InvalidArgument);
    wellFormedMessage(fine);
    expect(fine.rawMessage).toBe("emoji \ud83d\ude80 stays");
  });
});
