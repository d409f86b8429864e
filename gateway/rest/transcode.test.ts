import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { AssignmentSchema } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { restRoutes, type RestRoute } from "./routes.js";
import { buildRequest, responseJson } from "./transcode.js";

const routes = restRoutes(DeliveryApiService);
const routeOf = (name: string): RestRoute => {
  const route = routes.find((r) => r.method.name === name);
  if (!route) throw new Error(`no route for ${name}`);
  return route;
};
const noVariables = new Map<string, string>();

function violations(thunk: () => unknown): string[] {
  try {
    thunk();
  } catch (error) {
    return ConnectError.from(error).findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field)).sort();
  }
  throw new Error("no error");
}

describe("transcoding", () => {
  it("fills remaining fields from nested, repeated and boolean query parameters", () => {
    // The same request type served without a body: everything comes from the query.
    const route: RestRoute = { ...routeOf("RescheduleDelivery"), body: "" };
    const query = new URLSearchParams("dropoff.latitude=1.5&dropoff.longitude=2&update_mask=dropoff&deliveryId=ignored");
    const request = buildRequest(route, { variables: new Map([["delivery_id", "d-1"]]), query, body: undefined });
    expect(request).toMatchObject({ deliveryId: "d-1", dropoff: { latitude: 1.5, longitude: 2 }, updateMask: { paths: ["dropoff"] } });

    const watch = buildRequest(routeOf("WatchDelivery"), {
      variables: new Map([["delivery_id", "d-1"]]),
      query: new URLSearchParams("includePositions=true&after_sequence=7"),
      body: undefined,
    });
    expect(watch).toMatchObject({ deliveryId: "d-1", includePositions: true, afterSequence: 7n });

    const listRoute: RestRoute = { ...routeOf("ListDeliveries"), method: { ...routeOf("ListDeliveries").method, input: AssignmentSchema } };
    const repeated = buildRequest(listRoute, { variables: noVariables, query: new URLSearchParams("package_ids=a&package_ids=b"), body: undefined });
    expect(repeated).toMatchObject({ packageIds: ["a", "b"] });
  });

  it("lets path variables win over the body", () => {
    const request = buildRequest(routeOf("ConfirmDelivery"), {
      variables: new Map([["delivery_id", "from-path"]]),
      query: new URLSearchParams(),
      body: { delivery_id: "from-body", deliveryId: "also-from-body", confirmationType: "CONFIRMATION_TYPE_PIN" },
    });
    expect(request).toMatchObject({ deliveryId: "from-path" });
  });

  it("names every unknown or undecodable field", () => {
    const route = routeOf("ScheduleDelivery");
    const body = { pickup: { latitude: "north" }, package_info: { size: "HUGE", extra: 1 }, deadline: "tomorrow" };
    expect(violations(() => buildRequest(route, { variables: noVariables, query: new URLSearchParams(), body }))).toEqual([
      "deadline",
      "package_info.extra",
      "package_info.size",
      "pickup.latitude",
    ]);
    expect(violations(() => buildRequest(route, { variables: noVariables, query: new URLSearchParams(), body: [1] }))).toEqual([""]);
    expect(
      violations(() => buildRequest(route, { variables: noVariables, query: new URLSearchParams("expedited=true"), body: {} })),
    ).toEqual([""]);
    const list = routeOf("ListDeliveries");
    expect(
      violations(() => buildRequest(list, { variables: noVariables, query: new URLSearchParams("page_token.x=1&nope=2"), body: undefined })),
    ).toEqual(["nope", "page_token.x"]);
  });

  it("answers the response_body field or the whole response", () => {
    const get = routeOf("GetDeliveryStatus");
    expect(responseJson(get, { $typeName: "dronedelivery.api.v1.GetDeliveryStatusResponse" } as never)).toEqual({});
    const owner = routeOf("GetDeliveryOwner");
    const json = responseJson(owner, {
      $typeName: "dronedelivery.api.v1.GetDeliveryOwnerResponse",
      deliveryId: "d-1",
      ownerId: "acct-1",
    } as never);
    expect(json).toEqual({ deliveryId: "d-1", ownerId: "acct-1" });
  });
});
