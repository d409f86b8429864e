/** The Account service's own data: one entry per account in the KV bucket `accounts`, keyed by id. */
import type { JetStreamClient } from "nats";
import { AccountSchema } from "../../gen/dronedelivery/account/v1/account_pb.js";
import { openBucket } from "../../lib/nats/kv.js";
import { ProtoKvStore } from "../../lib/store/proto-kv-store.js";

export const ACCOUNTS_BUCKET = "accounts";

export type AccountStore = ProtoKvStore<typeof AccountSchema>;

export async function openAccountStore(js: JetStreamClient): Promise<AccountStore> {
  const kv = await openBucket(js, ACCOUNTS_BUCKET, { description: "Account service: customer accounts by account id" });
  return new ProtoKvStore(kv, AccountSchema);
}
