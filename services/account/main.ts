import { runServiceMain } from "../../lib/service/service-host.js";
import { accountModule } from "./module.js";

runServiceMain(accountModule);
