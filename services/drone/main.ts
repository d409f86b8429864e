import { runServiceMain } from "../../lib/service/service-host.js";
import { droneModule } from "./module.js";

runServiceMain(droneModule);
