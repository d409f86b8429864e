import { describe, expect, it } from "vitest";
import { DeliveryApiService } from "../../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { compilePathTemplate } from "./path-template.js";
import { matchRoute, restRoutes } from "./routes.js";

describe("path templates", () => {
  it("binds single-segment variables, percent-decoded", () => {
    const t = compilePathTemplate("/v1/deliveries/{delivery_id}");
    expect(t.variables).toEqual([["delivery_id"]]);
    expect(t.match("/v1/deliveries/d-1")).toEqual(new Map([["delivery_id", "d-1"]]));
    expect(t.match("/v1/deliveries/a%20b")).toEqual(new Map([["delivery_id", "a b"]]));
    expect(t.match("/v1/deliveries/a/b")).toBeUndefined();
    expect(t.match("/v1/deliveries/")).toBeUndefined();
    expect(t.match("/v1/deliveries/%zz")).toBeUndefined();
  });

  it("binds nested field paths, sub-templates, wildcards and verbs", () => {
    const nested = compilePathTemplate("/v1/{pickup.latitude}/{name=shelves/*/books/**}:check");
    expect(nested.variables).toEqual([["pickup", "latitude"], ["name"]]);
    expect(nested.match("/v1/47.5/shelves/s1/books/a/b:check")).toEqual(
      new Map([
        ["pickup.latitude", "47.5"],
        ["name", "shelves/s1/books/a/b"],
      ]),
    );
    expect(nested.match("/v1/47.5/shelves/s1/books/a/b")).toBeUndefined();
    const star = compilePathTemplate("/v1/*/items");
    expect(star.match("/v1/anything/items")).toEqual(new Map());
    expect(star.match("/v1/items")).toBeUndefined();
  });

  it("refuses malformed templates", () => {
    for (const bad of ["v1/x", "/v1/{unclosed", "/v1/{9bad}", "/v1//x"]) {
      expect(() => compilePathTemplate(bad)).toThrow();
    }
  });
});

describe("routes from the annotations", () => {
  const routes = restRoutes(DeliveryApiService);

  it("has one route per annotated method", () => {
    expect(routes.map((r) => `${r.httpMethod} ${r.template.source}`).sort()).toEqual([
      "DELETE /v1/deliveryrequests/{delivery_id}",
      "GET /v1/deliveries",
      "GET /v1/deliveries/{delivery_id}",
      "GET /v1/deliveries/{delivery_id}/events",
      "GET /v1/deliveries/{delivery_id}/history",
      "GET /v1/deliveries/{delivery_id}/owner",
      "GET /v1/deliveries/{delivery_id}/status",
      "PATCH /v1/deliveryrequests/{delivery_id}",
      "POST /v1/deliveries/{delivery_id}/confirmations",
      "POST /v1/deliveryrequests",
    ]);
    const get = routes.find((r) => r.method.name === "GetDelivery");
    expect(get?.responseBody).toBe("delivery");
    expect(routes.find((r) => r.method.name === "ScheduleDelivery")?.body).toBe("*");
  });

  it("tells a wrong method from an unknown path", () => {
    const found = matchRoute(routes, "GET", "/v1/deliveries/d-1/status");
    expect(found.kind === "found" && found.route.method.name).toBe("GetDeliveryStatus");
    expect(matchRoute(routes, "POST", "/v1/deliveries/d-1")).toEqual({ kind: "wrong-method", allow: ["GET"] });
    expect(matchRoute(routes, "GET", "/v1/nothing")).toEqual({ kind: "none" });
  });
});
