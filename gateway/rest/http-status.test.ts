import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { codeName, httpStatusOf } from "./http-status.js";

describe("REST error codes", () => {
  it("names codes like Connect does", () => {
    expect(codeName(Code.InvalidArgument)).toBe("invalid_argument");
    expect(codeName(Code.DeadlineExceeded)).toBe("deadline_exceeded");
    expect(codeName(Code.Canceled)).toBe("canceled");
    expect(codeName(Code.Unauthenticated)).toBe("unauthenticated");
  });

  it("maps codes to the Connect HTTP statuses", () => {
    const statuses = [
      Code.InvalidArgument,
      Code.FailedPrecondition,
      Code.Unauthenticated,
      Code.PermissionDenied,
      Code.NotFound,
      Code.AlreadyExists,
      Code.Aborted,
      Code.ResourceExhausted,
      Code.Unavailable,
      Code.DeadlineExceeded,
      Code.Internal,
    ].map(httpStatusOf);
    expect(statuses).toEqual([400, 400, 401, 403, 404, 409, 409, 429, 503, 504, 500]);
  });
});
