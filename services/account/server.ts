/** The AccountService handlers: validation, then the store. */
import { create, equals } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { AccountSchema, AccountStatus, AccountStatusSchema, type Account } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { alreadyExists, invalidArgument, notFound } from "../../lib/grpc/errors.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import { Violations } from "../../lib/validation/violations.js";
import type { AccountStore } from "./store.js";

function requireAccountId(accountId: string, field = "account_id"): void {
  new Violations().id(field, accountId).throwIfAny();
}

async function load(store: AccountStore, accountId: string): Promise<Account> {
  const found = await store.get(accountId);
  if (!found) throw notFound(`account ${accountId}`);
  return found.value;
}

/** The fields a caller sets; equal content means a repeated create. */
function sameContent(a: Account, b: Account): boolean {
  const strip = (x: Account) => create(AccountSchema, { ...x, createTime: undefined, updateTime: undefined });
  return equals(AccountSchema, strip(a), strip(b));
}

export function accountRegistration(store: AccountStore): Registration {
  return registration(AccountService, {
    async getAccount(request) {
      requireAccountId(request.accountId);
      return { account: await load(store, request.accountId) };
    },

    async checkAccountStatus(request) {
      requireAccountId(request.accountId);
      const account = await load(store, request.accountId);
      const canOrder = account.status === AccountStatus.ACTIVE;
      return {
        accountId: account.accountId,
        status: account.status,
        canOrder,
        reason: canOrder ? "" : `account is suspended${account.statusReason ? `: ${account.statusReason}` : ""}`,
      };
    },

    async createAccount(request) {
      const input = request.account;
      if (!input) throw invalidArgument([{ field: "account", description: "is required" }]);
      new Violations()
        .id("account.account_id", input.accountId)
        .id("account.user_id", input.userId)
        .text("account.display_name", input.displayName, { max: 256 })
        .enumValue("account.status", input.status, AccountStatusSchema)
        .text("account.status_reason", input.statusReason)
        .throwIfAny();
      const now = timestampNow();
      const wanted = create(AccountSchema, { ...input, createTime: now, updateTime: now });
      const result = await store.mutate(input.accountId, (current) => {
        if (!current) return wanted;
        if (sameContent(current, wanted)) return UNCHANGED;
        throw alreadyExists(`account ${input.accountId} (with different content)`);
      });
      return { account: result.value };
    },
  });
}
