// Public requests meet the rules of the public contracts before any handler or internal call.
import { create, getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError, createContextValues, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DeliveryApiService, ScheduleDeliveryRequestSchema } from "../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import { ParcelSize } from "../gen/dronedelivery/api/v2/resources_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { requestRulesInterceptor } from "./request-rules.js";
import { buildRequest } from "./rest/transcode.js";
import { restRoutes } from "./rest/routes.js";

const DEADLINE = new Date(Date.now() + 86_400_000).toISOString();
const schedule = DeliveryApiService.method.scheduleDelivery;

function request(message: unknown): UnaryRequest {
  return {
    stream: false,
    service: DeliveryApiService,
    method: schedule,
    requestMethod: "POST",
    url: "http://gateway/dronedelivery.api.v2.DeliveryApiService/ScheduleDelivery",
    signal: new AbortController().signal,
    header: new Headers(),
    contextValues: createContextValues(),
    message,
  } as UnaryRequest;
}

function fields(error: unknown): string[] {
  return ConnectError.from(error).findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field));
}

describe("the public contracts' rules", () => {
  // The most parcels a delivery may carry is declared in the v2 contract, nowhere in code.
  const declared = getOption(ScheduleDeliveryRequestSchema.field.parcels, fieldRules).type;
  const maxParcels = declared.case === "repeated" ? Number(declared.value.maxItems) : 0;
  const parcels = (n: number) => Array.from({ length: n }, (_, i) => ({ parcelId: `p-${i}`, size: ParcelSize.SMALL, weightKg: 1 }));
  const body = (n: number) => ({
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff: { latitude: 47.62, longitude: -122.34 },
    deadline: DEADLINE,
    parcels: parcels(n).map((p) => ({ ...p, size: "PARCEL_SIZE_SMALL" })),
  });

  it("refuse a Connect request before the handler runs, naming public fields", async () => {
    expect(maxParcels).toBe(10);
    let called = 0;
    const next = requestRulesInterceptor()(async (req) => {
      called++;
      return { stream: false, service: req.service, method: req.method, header: new Headers(), trailer: new Headers(), message: {} } as never;
    });
    const message = (n: number) =>
      create(ScheduleDeliveryRequestSchema, {
        pickup: { latitude: 1, longitude: 1 },
        dropoff: { latitude: 2, longitude: 2 },
        deadline: { seconds: BigInt(Math.floor(Date.now() / 1000) + 86_400) },
        parcels: parcels(n),
      });
    await next(request(message(maxParcels)));
    expect(called).toBe(1);

    const tooMany = message(maxParcels + 1);
    const refused = await next(request(tooMany)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ConnectError.from(refused).code).toBe(Code.InvalidArgument);
    expect(fields(refused)).toEqual(["parcels"]);
    expect(called).toBe(1);
  });

  it("refuse a REST request as it is transcoded", () => {
    const route = restRoutes(DeliveryApiService).find((r) => r.method === schedule)!;
    const input = (json: unknown) => ({ variables: new Map<string, string>(), query: new URLSearchParams(), body: json as never });
    expect(() => buildRequest(route, input(body(maxParcels)))).not.toThrow();
    const bad = { ...body(maxParcels + 1), pickup: { latitude: 91, longitude: 0 } };
    let error: unknown;
    try {
      buildRequest(route, input(bad));
    } catch (e) {
      error = e;
    }
    expect(fields(error).sort()).toEqual(["parcels", "pickup.latitude"]);
  });
});
