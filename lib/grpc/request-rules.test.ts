// The binding's boundary: a request that breaks a rule of its contract never reaches the handler.
import * as grpc from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { PackageSchema } from "../../gen/dronedelivery/package/v1/package_pb.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { rpcError } from "../../test/harness/rpc.js";
import { addService, createClient, fieldViolations, type Client, type ServiceImpl } from "./index.js";

/** Every request a handler was given. */
const handled: string[] = [];

const impl: ServiceImpl<typeof PackageService> = {
  async upsertPackage(request) {
    handled.push(`upsert ${request.package?.packageId}`);
    return { package: request.package, created: true };
  },
  async getPackage(request) {
    handled.push(`get ${request.packageId}`);
    return { package: { $typeName: PackageSchema.typeName, packageId: request.packageId } as never };
  },
  async updatePackage(request) {
    handled.push(`update ${request.package?.packageId}`);
    return { package: request.package };
  },
  async deletePackage(request) {
    handled.push(`delete ${request.packageId}`);
    return { deleted: true };
  },
  async getPackageSummary(request) {
    handled.push(`summary ${request.ownerId}`);
    return { ownerId: request.ownerId };
  },
};

let server: grpc.Server;
let client: Client<typeof PackageService>;

beforeAll(async () => {
  server = new grpc.Server();
  addService(server, PackageService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  client = createClient(PackageService, { address: `127.0.0.1:${port}`, defaultTimeoutMs: 5_000 });
});

afterAll(async () => {
  client?.close();
  await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
});

describe("the binding's request rules", () => {
  it("refuses an internal call that breaks its contract's rules before the handler runs", async () => {
    const bad = await rpcError(
      client.upsertPackage({ package: { packageId: "has space", ownerId: "", size: 9 as PackageSize, weightKg: 0, tag: "x".repeat(300) } }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(bad).map((v) => v.field).sort()).toEqual([
      "package.owner_id",
      "package.package_id",
      "package.size",
      "package.tag",
      "package.weight_kg",
    ]);
    for (const violation of fieldViolations(bad)) expect(violation.description).not.toBe("");
    const missing = await rpcError(client.getPackage({ packageId: "" }));
    expect(fieldViolations(missing)).toEqual([{ field: "package_id", description: "value is required" }]);
    expect(handled).toEqual([]);
  });

  it("reports a message-level rule of the contract on the field its id names", async () => {
    const error = await rpcError(client.updatePackage({ package: { packageId: "p-1", weightKg: -1 }, updateMask: { paths: ["weight_kg", "owner_id"] } }));
    expect(fieldViolations(error).map((v) => v.field).sort()).toEqual(["package.weight_kg", "update_mask"]);
    expect(handled).toEqual([]);
  });

  it("hands a request that keeps the rules to the handler", async () => {
    await client.upsertPackage({ package: { packageId: "p.1", ownerId: "acct-1", size: PackageSize.SMALL, weightKg: 1.5 } });
    await client.updatePackage({ package: { packageId: "p.1", tag: "fragile" }, updateMask: { paths: ["tag"] } });
    expect(handled).toEqual(["upsert p.1", "update p.1"]);
  });
});
