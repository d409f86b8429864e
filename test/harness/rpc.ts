/** Assertions on failed calls, shared by the test files. */
import { expect } from "vitest";
import { RpcError } from "../../lib/grpc/errors.js";

/** Resolves with the RpcError the call failed with; fails the test when it succeeded or failed otherwise. */
export async function rpcError(promise: Promise<unknown>): Promise<RpcError> {
  const error: unknown = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}
