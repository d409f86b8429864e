/** The Account service: customer accounts, and whether an account may order. */
import { AccountService } from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { DEFAULT_PORTS } from "../../lib/service/ports.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { seedDemoAccounts } from "./seed.js";
import { accountRegistration } from "./server.js";
import { openAccountStore } from "./store.js";

export const accountModule: ServiceModule = {
  name: "account",
  defaultPort: DEFAULT_PORTS.account,
  services: [AccountService],
  async create({ js, env, log }) {
    const store = await openAccountStore(js);
    if (env["ACCOUNT_SEED_DEMO"] !== "false") {
      const created = await seedDemoAccounts(store);
      if (created > 0) log.info({ created }, "seeded demo accounts");
    }
    return { registrations: [accountRegistration(store)] };
  },
};
