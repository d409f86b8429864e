import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { invalidArgument, notFound, RpcError, unavailable } from "../lib/grpc/errors.js";
import { toConnectError } from "./errors.js";
import { schedulePathToPublic } from "./v1/mapping.js";

function outgoing(error: ConnectError): { typeName: string; value: unknown }[] {
  return error.details.map((d) => ("desc" in d ? { typeName: d.desc.typeName, value: d.value } : { typeName: d.type, value: d.value }));
}

describe("toConnectError", () => {
  it("keeps the code and message and drops internal trailers", () => {
    const metadata = new Metadata();
    metadata.set("x-internal-host", "delivery-0");
    const error = toConnectError(new RpcError(status.NOT_FOUND, "delivery d-1 not found", { metadata }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe("delivery d-1 not found");
    expect([...error.metadata.keys()]).toEqual([]);
    expect(toConnectError(notFound("x")).code).toBe(Code.NotFound);
  });

  it("carries field violations with public paths", () => {
    const error = toConnectError(
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
    const error = toConnectError(unavailable("busy", 1000));
    expect(error.code).toBe(Code.Unavailable);
    expect(outgoing(error).map((d) => d.typeName)).toEqual([RetryInfoSchema.typeName]);
  });

  it("never passes on a message that may describe the platform's insides", () => {
    const down = toConnectError(
      new RpcError(status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:50055"),
    );
    expect(down.code).toBe(Code.Unavailable);
    expect(down.rawMessage).not.toMatch(/127\.0\.0\.1|50055|ECONNREFUSED/);
    expect(toConnectError(new RpcError(status.INTERNAL, "store at nats://10.0.0.4 failed")).rawMessage).toBe("internal error");
    expect(toConnectError(new RpcError(status.DEADLINE_EXCEEDED, "delivery-2 timed out")).rawMessage).not.toContain("delivery-2");
  });

  it("hides anything else behind Internal", () => {
    const error = toConnectError(new TypeError("x is undefined"));
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    const same = new ConnectError("no", Code.PermissionDenied);
    expect(toConnectError(same)).toBe(same);
  });
});
