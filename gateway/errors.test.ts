import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { failedPrecondition, invalidArgument, notFound, unavailable } from "../lib/grpc/errors.js";
import { publicError } from "./errors.js";
import { schedulePathToPublic } from "./v1/mapping.js";

function outgoing(error: ConnectError): { typeName: string; value: unknown }[] {
  return error.details.map((d) => ("desc" in d ? { typeName: d.desc.typeName, value: d.value } : { typeName: d.type, value: d.value }));
}

describe("publicError", () => {
  it("keeps the code and message and drops internal trailers", () => {
    const error = publicError(new ConnectError("delivery d-1 not found", Code.NotFound, { "x-internal-host": "delivery-0" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe("delivery d-1 not found");
    expect([...error.metadata.keys()]).toEqual([]);
    expect(publicError(notFound("x")).code).toBe(Code.NotFound);
  });

  it("carries field violations with public paths", () => {
    const error = publicError(
      invalidArgument([
        { field: "packages[0].weight_kg", description: "must be greater than 0" },
        { field: "pickup.latitude", description: "must be between -90 and 90" },
      ]),
      schedulePathToPublic,
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("package_info.weight_kg");
    const [detail] = outgoing(error);
    expect(detail?.typeName).toBe(BadRequestSchema.typeName);
    expect((detail?.value as { fieldViolations: { field: string }[] }).fieldViolations.map((v) => v.field)).toEqual([
      "package_info.weight_kg",
      "pickup.latitude",
    ]);
  });

  it("carries retry advice", () => {
    const error = publicError(unavailable("busy", 1000));
    expect(error.code).toBe(Code.Unavailable);
    expect(outgoing(error).map((d) => d.typeName)).toEqual([RetryInfoSchema.typeName]);
  });

  it("carries only the details a client can act on", () => {
    const refusal = failedPrecondition("too heavy", [{ type: "WEIGHT", subject: "package:p-1", description: "over 20 kg" }]);
    refusal.details.push({ desc: ErrorInfoSchema, value: { reason: "INTERNAL_REASON", domain: "drone" } });
    const error = publicError(refusal);
    expect(error.rawMessage).toBe("too heavy");
    expect(outgoing(error).map((d) => d.typeName)).toEqual(["google.rpc.PreconditionFailure"]);
  });

  it("never passes on a message that may describe the platform's insides", () => {
    const down = publicError(
      new ConnectError("No connection established. Last error: connect ECONNREFUSED 127.0.0.1:50055", Code.Unavailable),
    );
    expect(down.code).toBe(Code.Unavailable);
    expect(down.rawMessage).not.toMatch(/127\.0\.0\.1|50055|ECONNREFUSED/);
    expect(publicError(new ConnectError("store at nats://10.0.0.4 failed", Code.Internal)).rawMessage).toBe("internal error");
    expect(publicError(new ConnectError("delivery-2 timed out", Code.DeadlineExceeded)).rawMessage).not.toContain("delivery-2");
  });

  it("hides anything else behind Internal", () => {
    const error = publicError(new TypeError("x is undefined"));
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    const refusal = publicError(new ConnectError("no", Code.PermissionDenied));
    expect([refusal.code, refusal.rawMessage]).toEqual([Code.PermissionDenied, "no"]);
  });
});
