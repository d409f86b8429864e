/** Assertions on failed calls, shared by the test files. */
import { ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** Resolves with the ConnectError the call failed with; fails the test when it succeeded or failed otherwise. */
export async function rpcError(promise: Promise<unknown>): Promise<ConnectError> {
  const error: unknown = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}
