/**
 * Demo accounts created on first start, so a fresh platform can take orders at once. Seeding
 * creates only missing accounts: a restart, or a second instance, changes nothing.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { AccountSchema, AccountStatus } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { UNCHANGED } from "../../lib/store/proto-kv-store.js";
import type { AccountStore } from "./store.js";

export const DEMO_ACCOUNTS = [
  { accountId: "acct-demo", userId: "user-demo", displayName: "Demo Customer", status: AccountStatus.ACTIVE, statusReason: "" },
  { accountId: "acct-contoso", userId: "user-contoso", displayName: "Contoso Ltd", status: AccountStatus.ACTIVE, statusReason: "" },
  {
    accountId: "acct-suspended",
    userId: "user-suspended",
    displayName: "Suspended Customer",
    status: AccountStatus.SUSPENDED,
    statusReason: "payment overdue",
  },
] as const;

/** Creates the demo accounts that are missing; returns how many it created. */
export async function seedDemoAccounts(store: AccountStore): Promise<number> {
  let created = 0;
  for (const demo of DEMO_ACCOUNTS) {
    const result = await store.mutate(demo.accountId, (current) => {
      if (current) return UNCHANGED;
      const now = timestampNow();
      return create(AccountSchema, { ...demo, createTime: now, updateTime: now });
    });
    if (result.changed) created++;
  }
  return created;
}
