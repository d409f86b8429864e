/**
 * The AccountService handlers, on requests the binding has checked against the field rules of the
 * contract: the store.
 */
import { create, equals } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { AccountSchema, AccountStatus, type Account } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { alreadyExists, notFound } from "../../lib/grpc/errors.js";
import { registration, type Registration } from "../../lib/service/grpc-server.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import type { AccountStore } from "./store.js";

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
      return { account: await load(store, request.accountId) };
    },

    async checkAccountStatus(request) {
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
      // Required by the contract's rules.
      const input = request.account as Account;
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
