/**
 * The public API versions the gateway serves side by side, each over Connect, gRPC-Web, gRPC and
 * REST (under its own path prefix). Adding a version is one entry here. The operators' fleet API
 * (v1, `/v1/fleet/`) is an entry of its own, before `/v1/`: a REST path goes to the first entry
 * whose prefix it starts with.
 */
import type { DescService, JsonValue } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { DeliveryApiService } from "../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { FleetApiService } from "../gen/dronedelivery/api/v1/fleet_api_service_pb.js";
import { DeliveryApiService as DeliveryApiServiceV2 } from "../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import type { HandlerDeps } from "./handler-deps.js";
import { fleetApiHandlers } from "./fleet/handlers.js";
import type { RestSuccess } from "./rest/handler.js";
import { deliveryApiHandlers } from "./v1/handlers.js";
import { v1RestSuccess } from "./v1/rest-success.js";
import { deliveryApiV2Handlers } from "./v2/handlers.js";
import { v2RestSuccess } from "./v2/rest-success.js";

export interface ApiVersion {
  /** REST paths of this version start with it, e.g. `/v1/`. */
  readonly restPrefix: string;
  readonly service: DescService;
  readonly handlers: (deps: HandlerDeps) => ServiceImpl<DescService>;
  /** Success answers other than 200 (e.g. 202 with Location), by method name. */
  readonly restSuccess?: (methodName: string, body: JsonValue) => RestSuccess | undefined;
}

export const API_VERSIONS: readonly ApiVersion[] = [
  {
    restPrefix: "/v1/fleet/",
    service: FleetApiService,
    handlers: (deps) => fleetApiHandlers(deps) as unknown as ServiceImpl<DescService>,
  },
  {
    restPrefix: "/v1/",
    service: DeliveryApiService,
    handlers: (deps) => deliveryApiHandlers(deps) as unknown as ServiceImpl<DescService>,
    restSuccess: v1RestSuccess,
  },
  {
    restPrefix: "/v2/",
    service: DeliveryApiServiceV2,
    handlers: (deps) => deliveryApiV2Handlers(deps) as unknown as ServiceImpl<DescService>,
    restSuccess: v2RestSuccess,
  },
];
