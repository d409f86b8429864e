import { runServiceMain } from "../../lib/service/service-host.js";
import { schedulerModule } from "./module.js";

runServiceMain(schedulerModule);
