// The Package service over real gRPC against a real nats-server.
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import type { PackageSchema } from "../../gen/dronedelivery/package/v1/package_pb.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createClient, fieldViolations, type Client } from "../../lib/grpc/index.js";
import type { RunningService } from "../../lib/service/service-host.js";
import { healthStatus, reflectionFilesFor, reflectionServices } from "../../test/harness/grpc-probes.js";
import { startNatsServer, type TestNatsServer } from "../../test/harness/nats-server.js";
import { startTestService } from "../../test/harness/services.js";
import { packageIdOf, packageKey } from "./keys.js";
import { packageModule } from "./module.js";
import { rpcError } from "../../test/harness/rpc.js";

let nats: TestNatsServer;
let service: RunningService;
let client: Client<typeof PackageService>;


function fieldsOf(error: ConnectError): string[] {
  return fieldViolations(error)
    .map((v) => v.field)
    .sort();
}

type PackageFields = Omit<MessageInitShape<typeof PackageSchema>, "$typeName">;

/** A valid package; each test uses its own ids and owners so tests do not see each other's data. */
function parcel(packageId: string, ownerId: string, overrides: PackageFields = {}): PackageFields {
  return { packageId, ownerId, size: PackageSize.SMALL, weightKg: 1.5, tag: "fragile", ...overrides };
}

beforeAll(async () => {
  nats = await startNatsServer();
  service = await startTestService(packageModule, nats.url);
  client = createClient(PackageService, { address: service.address });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await nats?.stop();
});

describe("package keys", () => {
  it("maps ids with dots to valid keys and back", () => {
    for (const id of ["p-1", "box.1", "a.b.c", "x_y.z-1"]) {
      const key = packageKey(id);
      expect(key).toMatch(/^pkg\.[-_=A-Za-z0-9]+$/);
      expect(packageIdOf(key)).toBe(id);
    }
    expect(packageKey("a.b")).not.toBe(packageKey("a_b"));
    for (const bad of ["has space", "a..b", ".lead", "trail."]) expect(() => packageKey(bad)).toThrow(TypeError);
  });
});

describe("package service", () => {
  it("creates a package, and the same upsert again answers the same with created=false", async () => {
    const first = await client.upsertPackage({ package: parcel("pkg-new", "owner-new", { deliveryId: "d-1" }) });
    expect(first.created).toBe(true);
    expect(first.package).toMatchObject({ packageId: "pkg-new", ownerId: "owner-new", size: PackageSize.SMALL, weightKg: 1.5, tag: "fragile", deliveryId: "d-1" });
    expect(first.package?.createTime).toBeDefined();
    expect(first.package?.updateTime).toEqual(first.package?.createTime);

    const second = await client.upsertPackage({ package: parcel("pkg-new", "owner-new", { deliveryId: "d-1" }) });
    expect(second).toEqual({ ...first, created: false });

    const { package: stored } = await client.getPackage({ packageId: "pkg-new" });
    expect(stored).toEqual(first.package);
  });

  it("replaces a package of the same owner, keeping its creation time", async () => {
    const first = await client.upsertPackage({ package: parcel("pkg-replace", "owner-replace") });
    const replaced = await client.upsertPackage({
      package: parcel("pkg-replace", "owner-replace", { size: PackageSize.LARGE, weightKg: 20, tag: "" }),
    });
    expect(replaced.created).toBe(false);
    expect(replaced.package).toMatchObject({ size: PackageSize.LARGE, weightKg: 20, tag: "" });
    expect(replaced.package?.createTime).toEqual(first.package?.createTime);
    const { package: stored } = await client.getPackage({ packageId: "pkg-replace" });
    expect(stored).toEqual(replaced.package);
  });

  it("stores ids that contain dots, each as its own record", async () => {
    const ids = ["box.1", "a.b.c", "box.1.x", "x.y", "box_1"];
    for (const [i, id] of ids.entries()) {
      expect((await client.upsertPackage({ package: parcel(id, "owner-dots", { weightKg: i + 1 }) })).created).toBe(true);
    }
    for (const [i, id] of ids.entries()) {
      expect((await client.getPackage({ packageId: id })).package?.weightKg).toBe(i + 1);
    }
    const summary = await client.getPackageSummary({ ownerId: "owner-dots" });
    expect(summary.packageCount).toBe(5n);
    expect(summary.totalWeightKg).toBe(15);
    expect((await client.deletePackage({ packageId: "a.b.c" })).deleted).toBe(true);
    expect((await rpcError(client.getPackage({ packageId: "a.b.c" }))).code).toBe(Code.NotFound);
    for (const bad of ["a..b", ".lead", "trail."]) {
      const error = await rpcError(client.upsertPackage({ package: parcel(bad, "owner-dots") }));
      expect(fieldViolations(error).map((v) => v.field)).toEqual(["package.package_id"]);
    }
    expect((await client.getPackage({ packageId: "box.1" })).package?.packageId).toBe("box.1");
  });

  it("answers FAILED_PRECONDITION when an upsert would change the owner", async () => {
    await client.upsertPackage({ package: parcel("pkg-owned", "owner-a") });
    const error = await rpcError(client.upsertPackage({ package: parcel("pkg-owned", "owner-b") }));
    expect(error.code).toBe(Code.FailedPrecondition);
    const [failure] = error.findDetails(PreconditionFailureSchema);
    expect(failure?.violations.map((v) => [v.type, v.subject])).toEqual([["PACKAGE_OWNER", "package:pkg-owned"]]);
    expect((await client.getPackage({ packageId: "pkg-owned" })).package?.ownerId).toBe("owner-a");
  });

  it("answers INVALID_ARGUMENT for a bad upsert, naming each bad field", async () => {
    const missing = await rpcError(client.upsertPackage({}));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(missing)).toEqual([{ field: "package", description: "value is required" }]);

    const bad = await rpcError(
      client.upsertPackage({
        package: { packageId: "has space", ownerId: "", size: 42 as PackageSize, weightKg: 0, tag: "t".repeat(257), deliveryId: "d.1" },
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(fieldsOf(bad)).toEqual([
      "package.delivery_id",
      "package.owner_id",
      "package.package_id",
      "package.size",
      "package.tag",
      "package.weight_kg",
    ]);

    const cases: [PackageFields, string][] = [
      [{ packageId: "p".repeat(129) }, "package.package_id"],
      [{ ownerId: "o".repeat(129) }, "package.owner_id"],
      [{ size: PackageSize.UNSPECIFIED }, "package.size"],
      [{ weightKg: -1 }, "package.weight_kg"],
      [{ weightKg: 1000.5 }, "package.weight_kg"],
      [{ weightKg: Number.NaN }, "package.weight_kg"],
      [{ weightKg: Number.POSITIVE_INFINITY }, "package.weight_kg"],
      [{ deliveryId: "d".repeat(129) }, "package.delivery_id"],
    ];
    for (const [override, field] of cases) {
      const error = await rpcError(client.upsertPackage({ package: parcel("pkg-bad", "owner-bad", override) }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual([field]);
    }
    // The limits themselves are accepted.
    const edge = await client.upsertPackage({ package: parcel("pkg-edge", "owner-bad", { weightKg: 1000, tag: "t".repeat(256) }) });
    expect(edge.package?.weightKg).toBe(1000);
    expect((await rpcError(client.getPackage({ packageId: "pkg-bad" }))).code).toBe(Code.NotFound);
  });

  it("answers NOT_FOUND or INVALID_ARGUMENT for gets and summaries of bad ids", async () => {
    const missing = await rpcError(client.getPackage({ packageId: "nothing-here" }));
    expect(missing.code).toBe(Code.NotFound);
    const empty = await rpcError(client.getPackage({ packageId: "" }));
    expect(empty.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(empty)).toEqual([{ field: "package_id", description: "value is required" }]);
    expect(fieldsOf(await rpcError(client.getPackage({ packageId: "a/b" })))).toEqual(["package_id"]);
    expect(fieldsOf(await rpcError(client.getPackageSummary({ ownerId: "" })))).toEqual(["owner_id"]);
    expect(fieldsOf(await rpcError(client.getPackageSummary({ ownerId: "o*" })))).toEqual(["owner_id"]);
  });

  it("updates only the fields named by the mask", async () => {
    const { package: original } = await client.upsertPackage({ package: parcel("pkg-update", "owner-update", { deliveryId: "d-9" }) });
    const { package: updated } = await client.updatePackage({
      // Values outside the mask, even invalid ones, are ignored.
      package: { packageId: "pkg-update", ownerId: "someone-else", size: PackageSize.LARGE, weightKg: -5, tag: "keep-away", deliveryId: "" },
      updateMask: { paths: ["tag", "delivery_id"] },
    });
    expect(updated).toMatchObject({ ownerId: "owner-update", size: PackageSize.SMALL, weightKg: 1.5, tag: "keep-away", deliveryId: "" });
    expect(updated?.createTime).toEqual(original?.createTime);
    expect((await client.getPackage({ packageId: "pkg-update" })).package).toEqual(updated);

    // The same update again changes nothing and answers the same.
    const again = await client.updatePackage({
      package: { packageId: "pkg-update", tag: "keep-away", deliveryId: "" },
      updateMask: { paths: ["tag", "delivery_id"] },
    });
    expect(again.package).toEqual(updated);

    const { package: heavier } = await client.updatePackage({
      package: { packageId: "pkg-update", size: PackageSize.MEDIUM, weightKg: 7.25 },
      updateMask: { paths: ["size", "weight_kg"] },
    });
    expect(heavier).toMatchObject({ size: PackageSize.MEDIUM, weightKg: 7.25, tag: "keep-away" });
  });

  it("answers INVALID_ARGUMENT naming update_mask for an empty, unknown or immutable path", async () => {
    await client.upsertPackage({ package: parcel("pkg-mask", "owner-mask") });
    const noMask = await rpcError(client.updatePackage({ package: { packageId: "pkg-mask" } }));
    expect(noMask.code).toBe(Code.InvalidArgument);
    expect(fieldsOf(noMask)).toEqual(["update_mask"]);

    for (const paths of [[], ["colour"], ["owner_id"], ["package_id"], ["create_time"], ["*"], ["weightKg"]]) {
      const error = await rpcError(client.updatePackage({ package: { packageId: "pkg-mask", tag: "x" }, updateMask: { paths } }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(["update_mask"]);
    }

    const several = await rpcError(
      client.updatePackage({ package: { packageId: "", weightKg: 0, size: 9 as PackageSize }, updateMask: { paths: ["weight_kg", "owner_id", "size"] } }),
    );
    expect(fieldsOf(several)).toEqual(["package.package_id", "package.size", "package.weight_kg", "update_mask"]);

    const noPackage = await rpcError(client.updatePackage({ updateMask: { paths: ["tag"] } }));
    expect(fieldsOf(noPackage)).toEqual(["package"]);

    const missing = await rpcError(client.updatePackage({ package: { packageId: "pkg-absent", tag: "x" }, updateMask: { paths: ["tag"] } }));
    expect(missing.code).toBe(Code.NotFound);

    expect((await client.getPackage({ packageId: "pkg-mask" })).package?.tag).toBe("fragile");
  });

  it("keeps every field of concurrent updates to one package", async () => {
    await client.upsertPackage({ package: parcel("pkg-race", "owner-race") });
    await Promise.all([
      client.updatePackage({ package: { packageId: "pkg-race", tag: "racing" }, updateMask: { paths: ["tag"] } }),
      client.updatePackage({ package: { packageId: "pkg-race", weightKg: 9.5 }, updateMask: { paths: ["weight_kg"] } }),
      client.updatePackage({ package: { packageId: "pkg-race", size: PackageSize.LARGE }, updateMask: { paths: ["size"] } }),
      client.updatePackage({ package: { packageId: "pkg-race", deliveryId: "d-race" }, updateMask: { paths: ["delivery_id"] } }),
      client.updatePackage({ package: { packageId: "pkg-race", tag: "racing" }, updateMask: { paths: ["tag"] } }),
      client.updatePackage({ package: { packageId: "pkg-race", weightKg: 9.5 }, updateMask: { paths: ["weight_kg"] } }),
    ]);
    const { package: stored } = await client.getPackage({ packageId: "pkg-race" });
    expect(stored).toMatchObject({ ownerId: "owner-race", tag: "racing", weightKg: 9.5, size: PackageSize.LARGE, deliveryId: "d-race" });
  });

  it("resolves concurrent upserts of one id: one creates, the rest agree", async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => client.upsertPackage({ package: parcel("pkg-twin", "owner-twin") })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) expect(r.package).toEqual(results[0]?.package);
    const summary = await client.getPackageSummary({ ownerId: "owner-twin" });
    expect(summary.packageCount).toBe(1n);
  });

  it("deletes a package: NOT_FOUND when missing unless allow_missing, and exactly one concurrent delete removes it", async () => {
    await client.upsertPackage({ package: parcel("pkg-delete", "owner-delete") });
    expect(await client.deletePackage({ packageId: "pkg-delete" })).toEqual(expect.objectContaining({ deleted: true }));
    expect((await rpcError(client.getPackage({ packageId: "pkg-delete" }))).code).toBe(Code.NotFound);
    expect((await rpcError(client.deletePackage({ packageId: "pkg-delete" }))).code).toBe(Code.NotFound);
    expect((await client.deletePackage({ packageId: "pkg-delete", allowMissing: true })).deleted).toBe(false);
    expect((await client.deletePackage({ packageId: "pkg-delete", allowMissing: true })).deleted).toBe(false);
    expect(fieldsOf(await rpcError(client.deletePackage({ packageId: "", allowMissing: true })))).toEqual(["package_id"]);

    // Deleted, the id is free again, for any owner.
    expect((await client.upsertPackage({ package: parcel("pkg-delete", "owner-other") })).created).toBe(true);

    await client.upsertPackage({ package: parcel("pkg-delete-race", "owner-delete") });
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () => client.deletePackage({ packageId: "pkg-delete-race", allowMissing: true })),
    );
    expect(outcomes.filter((o) => o.deleted)).toHaveLength(1);
  });

  it("summarises an owner's stored packages, following deletes and weight changes", async () => {
    const empty = await client.getPackageSummary({ ownerId: "owner-sum" });
    expect(empty).toMatchObject({ ownerId: "owner-sum", packageCount: 0n, totalWeightKg: 0 });

    await Promise.all(
      [1, 2, 3, 4, 5, 6, 7, 8].map((n) => client.upsertPackage({ package: parcel(`sum-${n}`, "owner-sum", { weightKg: n }) })),
    );
    await client.upsertPackage({ package: parcel("sum-other", "owner-sum-other", { weightKg: 100 }) });
    expect(await client.getPackageSummary({ ownerId: "owner-sum" })).toMatchObject({ packageCount: 8n, totalWeightKg: 36 });

    await client.deletePackage({ packageId: "sum-8" });
    await client.updatePackage({ package: { packageId: "sum-1", weightKg: 11 }, updateMask: { paths: ["weight_kg"] } });
    await client.upsertPackage({ package: parcel("sum-2", "owner-sum", { weightKg: 0.5 }) });
    // 11 + 0.5 + 3 + 4 + 5 + 6 + 7
    expect(await client.getPackageSummary({ ownerId: "owner-sum" })).toMatchObject({ packageCount: 7n, totalWeightKg: 36.5 });
    expect(await client.getPackageSummary({ ownerId: "owner-sum-other" })).toMatchObject({ packageCount: 1n, totalWeightKg: 100 });
  });

  it("reports SERVING and describes itself by reflection", async () => {
    expect(await healthStatus(service.address)).toBe("SERVING");
    expect(await healthStatus(service.address, "dronedelivery.package.v1.PackageService")).toBe("SERVING");
    expect(await reflectionServices(service.address)).toContain("dronedelivery.package.v1.PackageService");
    const files = await reflectionFilesFor(service.address, "dronedelivery.package.v1.PackageService");
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        "dronedelivery/package/v1/package_service.proto",
        "dronedelivery/package/v1/package.proto",
        "dronedelivery/common/v1/package_info.proto",
      ]),
    );
  });

  it("keeps its data across a restart", async () => {
    const { package: stored } = await client.upsertPackage({ package: parcel("pkg.durable", "owner-durable", { weightKg: 4.5 }) });
    await client.upsertPackage({ package: parcel("pkg-durable-2", "owner-durable", { weightKg: 2 }) });
    const port = service.port;
    client.close();
    await service.stop();
    service = await startTestService(packageModule, nats.url, { port });
    client = createClient(PackageService, { address: service.address });

    expect((await client.getPackage({ packageId: "pkg.durable" })).package).toEqual(stored);
    expect(await client.getPackageSummary({ ownerId: "owner-durable" })).toMatchObject({ packageCount: 2n, totalWeightKg: 6.5 });
    const again = await client.upsertPackage({ package: parcel("pkg.durable", "owner-durable", { weightKg: 4.5 }) });
    expect(again).toEqual({ $typeName: again.$typeName, package: stored, created: false });
  });
});
