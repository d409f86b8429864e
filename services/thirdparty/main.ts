import { runServiceMain } from "../../lib/service/service-host.js";
import { thirdPartyModule } from "./module.js";

runServiceMain(thirdPartyModule);
