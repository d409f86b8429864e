/** The Account service: customer accounts, and whether an account may order. */
import { registeredService } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";
import { seedDemoAccounts } from "./seed.js";
import { accountRegistration } from "./server.js";
import { openAccountStore } from "./store.js";

export const accountModule: ServiceModule = {
  ...registeredService("account"),
  async create({ js, env, log }) {
    const store = await openAccountStore(js);
    if (env["ACCOUNT_SEED_DEMO"] !== "false") {
      const created = await seedDemoAccounts(store);
      if (created > 0) log.info({ created }, "seeded demo accounts");
    }
    return { registrations: [accountRegistration(store)] };
  },
};
