import { runServiceMain } from "../../lib/service/service-host.js";
import { ingestionModule } from "./module.js";

runServiceMain(ingestionModule);
