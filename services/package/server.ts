/**
 * The PackageService handlers, on requests the binding has checked against the field rules of the
 * contract: the store.
 */
import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { PackageSchema, type Package } from "../../gen/dronedelivery/package/v1/package_pb.js";
import { PackageService } from "../../gen/dronedelivery/package/v1/package_service_pb.js";
import { failedPrecondition, notFound } from "../../lib/grpc/errors.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import type { PackageStore } from "./store.js";
import { totalsOf } from "./summary.js";
import { copyFields, maskedPaths } from "./fields.js";

/** The fields a caller sets, without the service's timestamps. */
function content(p: Package): Package {
  return create(PackageSchema, {
    packageId: p.packageId,
    ownerId: p.ownerId,
    size: p.size,
    weightKg: p.weightKg,
    tag: p.tag,
    deliveryId: p.deliveryId,
  });
}

function sameContent(a: Package, b: Package): boolean {
  return equals(PackageSchema, content(a), content(b));
}

function ownerConflict(packageId: string) {
  return failedPrecondition(`package ${packageId} belongs to another owner`, [
    {
      type: "PACKAGE_OWNER",
      subject: `package:${packageId}`,
      description: "the package is registered to another owner; its owner cannot change",
    },
  ]);
}

/** The PreconditionFailure type of a package held by another delivery. */
export const PACKAGE_IN_DELIVERY = "PACKAGE_IN_DELIVERY";

function deliveryConflict(packageId: string, holder: string) {
  return failedPrecondition(`package ${packageId} is already in delivery ${holder}`, [
    {
      type: PACKAGE_IN_DELIVERY,
      subject: `delivery:${holder}`,
      description: "a package can be in one open delivery at a time; name the delivery in replace_delivery_id once it has ended",
    },
  ]);
}

export function packageRegistration(store: PackageStore): Registration {
  return registration(PackageService, {
    async upsertPackage(request) {
      // Required by the contract's rules.
      const input = request.package as Package;

      const wanted = content(input);
      // Most packages are new: a create-only write first, and a read only when one exists.
      const now = timestampNow();
      const fresh = create(PackageSchema, { ...wanted, createTime: now, updateTime: now });
      if ((await store.createNew(input.packageId, fresh)) !== undefined) return { package: fresh, created: true };
      let created = false;
      const result = await store.mutate(input.packageId, (current) => {
        created = current === undefined;
        const now = timestampNow();
        if (!current) return create(PackageSchema, { ...wanted, createTime: now, updateTime: now });
        if (current.ownerId !== wanted.ownerId) throw ownerConflict(input.packageId);
        const holder = current.deliveryId;
        if (holder !== "" && holder !== wanted.deliveryId && holder !== request.replaceDeliveryId) {
          throw deliveryConflict(input.packageId, holder);
        }
        if (sameContent(current, wanted)) return UNCHANGED;
        return create(PackageSchema, { ...wanted, createTime: current.createTime, updateTime: now });
      });
      return { package: result.value, created };
    },

    async getPackage(request) {
      const found = await store.get(request.packageId);
      if (!found) throw notFound(`package ${request.packageId}`);
      return { package: found.value };
    },

    async updatePackage(request) {
      // Required by the contract's rules, which also check the paths and the values they name.
      const source = request.package as Package;
      const paths = maskedPaths(request.updateMask);

      const result = await store.mutate(source.packageId, (current) => {
        if (!current) throw notFound(`package ${source.packageId}`);
        const next = clone(PackageSchema, current);
        copyFields(next, source, paths);
        if (sameContent(current, next)) return UNCHANGED;
        next.updateTime = timestampNow();
        return next;
      });
      return { package: result.value };
    },

    async deletePackage(request) {
      const deleted = await store.remove(request.packageId, request.deliveryId === "" ? undefined : (p) => p.deliveryId === request.deliveryId);
      if (!deleted && !request.allowMissing && !(await store.get(request.packageId))) throw notFound(`package ${request.packageId}`);
      return { deleted };
    },

    async getPackageSummary(request) {
      const totals = totalsOf(await store.listByOwner(request.ownerId));
      return {
        ownerId: request.ownerId,
        packageCount: BigInt(totals.packageCount),
        totalWeightKg: totals.totalWeightKg,
      };
    },
  });
}
