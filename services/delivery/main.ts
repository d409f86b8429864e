import { runServiceMain } from "../../lib/service/service-host.js";
import { deliveryModule } from "./module.js";

runServiceMain(deliveryModule);
