import { runServiceMain } from "../../lib/service/service-host.js";
import { packageModule } from "./module.js";

runServiceMain(packageModule);
