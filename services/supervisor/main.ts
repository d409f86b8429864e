import { runServiceMain } from "../../lib/service/service-host.js";
import { supervisorModule } from "./module.js";

runServiceMain(supervisorModule);
