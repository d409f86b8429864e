/**
 * The platform's OpenAPI document, gen/openapi/dronedelivery-api.openapi.json: the public API
 * versions the gateway serves over REST, with the same prefixes, in the same order and with the
 * same answers other than 200 as gateway/versions.ts (gateway/openapi/openapi.test.ts checks
 * that both agree). The gateway serves the file at `/openapi.json`.
 */
import { v1RestSuccess } from "../../gateway/v1/rest-success.js";
import { v2RestSuccess } from "../../gateway/v2/rest-success.js";
import type { OpenApiPluginConfig } from "./plugin.js";

export const PUBLIC_API: OpenApiPluginConfig = {
  file: "openapi/dronedelivery-api.openapi.json",
  apis: [
    { service: "dronedelivery.api.v1.FleetApiService", restPrefix: "/v1/fleet/" },
    { service: "dronedelivery.api.v1.DeliveryApiService", restPrefix: "/v1/", restSuccess: v1RestSuccess },
    { service: "dronedelivery.api.v2.DeliveryApiService", restPrefix: "/v2/", restSuccess: v2RestSuccess },
  ],
};
