// The authorization table: complete for every internal service in gen/, naming only known
// identities and existing methods, and encoding who may do what.

import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { ANY_AUTHENTICATED, AUTHORIZATION_TABLE, allowedCallers, authorize, isPublicService } from "./authorization.js";
import { PKI_IDENTITIES, SERVICE_IDENTITIES } from "./identities.js";

const GEN_DIR = fileURLToPath(new URL("../../gen/", import.meta.url));

/** Served by @grpc/reflection next to v1, with no generated code in gen/. */
const SERVED_WITHOUT_GEN = ["grpc.reflection.v1alpha.ServerReflection"];

/** Every service descriptor exported by a file under gen/. */
async function generatedServices(): Promise<Map<string, DescService>> {
  const files = (await readdir(GEN_DIR, { recursive: true })).filter((f) => f.endsWith("_pb.ts"));
  const services = new Map<string, DescService>();
  for (const file of files) {
    const module = (await import(pathToFileURL(join(GEN_DIR, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      if (typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "service") {
        const service = value as DescService;
        services.set(service.typeName, service);
      }
    }
  }
  expect(services.size, `services found under ${relative(process.cwd(), GEN_DIR)}`).toBeGreaterThan(5);
  return services;
}

describe("the authorization table", () => {
  let services: Map<string, DescService>;
  beforeAll(async () => {
    services = await generatedServices();
  });

  it("has an entry for every method of every internal service in gen/", () => {
    const missing: string[] = [];
    for (const service of services.values()) {
      if (isPublicService(service.typeName)) continue;
      for (const method of service.methods) {
        if (allowedCallers(service.typeName, method.name) === undefined) missing.push(`${service.typeName}/${method.name}`);
      }
    }
    expect(missing, "methods with no caller rule in lib/service/registry.ts").toEqual([]);
  });

  it("names only services and methods that exist", () => {
    const unknown: string[] = [];
    for (const [typeName, rules] of Object.entries(AUTHORIZATION_TABLE)) {
      if (SERVED_WITHOUT_GEN.includes(typeName)) continue;
      const service = services.get(typeName);
      if (service === undefined) {
        unknown.push(typeName);
        continue;
      }
      for (const method of Object.keys(rules)) {
        if (method !== "*" && !service.methods.some((m) => m.name === method)) unknown.push(`${typeName}/${method}`);
      }
    }
    expect(unknown).toEqual([]);
    expect(services.has("dronedelivery.api.v1.DeliveryApiService")).toBe(true);
    expect(Object.keys(AUTHORIZATION_TABLE).filter(isPublicService)).toEqual([]);
  });

  it("names only identities the PKI issues", () => {
    const known: readonly string[] = PKI_IDENTITIES;
    for (const rules of Object.values(AUTHORIZATION_TABLE)) {
      for (const callers of Object.values(rules)) {
        if (callers === ANY_AUTHENTICATED) continue;
        for (const caller of callers) expect(known, caller).toContain(caller);
      }
    }
  });
});

describe("authorize", () => {
  const DRONE = "dronedelivery.drone.v1.DroneSchedulerService";
  const DELIVERY = "dronedelivery.delivery.v1.DeliveryService";
  const INGESTION = "dronedelivery.ingestion.v1.IngestionService";

  /** The identities allowed to call a method, among every identity the PKI issues. */
  const callersOf = (service: string, method: string): string[] =>
    PKI_IDENTITIES.filter((identity) => authorize(service, method, identity).allowed);

  it("lets only the scheduler and the supervisor assign and release drones", () => {
    expect(callersOf(DRONE, "AssignDrone")).toEqual(["scheduler"]);
    expect(callersOf(DRONE, "ReleaseAssignment")).toEqual(["scheduler", "supervisor"]);
    expect(authorize(DRONE, "AssignDrone", "gateway")).toEqual({
      allowed: false,
      reason: `${DRONE}/AssignDrone may be called by scheduler, not by gateway`,
    });
  });

  it("lets only the gateway call ingestion", () => {
    for (const method of ["ScheduleDelivery", "RescheduleDelivery", "CancelDelivery"]) {
      expect(callersOf(INGESTION, method), method).toEqual(["gateway"]);
    }
  });

  it("lets the gateway read and confirm deliveries and not change them otherwise", () => {
    const gatewayMethods = ["GetDelivery", "GetDeliveryOwner", "ListDeliveries", "GetDeliveryHistory", "WatchDelivery", "ConfirmDelivery"];
    for (const method of gatewayMethods) expect(callersOf(DELIVERY, method), method).toEqual(["gateway"]);
    // The scheduler asks whether a parcel's earlier delivery has ended.
    expect([...callersOf(DELIVERY, "GetDeliveryStatus")].sort()).toEqual(["gateway", "scheduler"]);
    for (const method of ["OpenDelivery", "ScheduleDelivery", "RescheduleDelivery", "CancelDelivery"]) {
      expect(callersOf(DELIVERY, method), method).toEqual(["scheduler"]);
    }
    expect(callersOf(DELIVERY, "FailDelivery")).toEqual(["supervisor"]);
  });

  it("gives the workflow what its code calls", () => {
    expect(callersOf("dronedelivery.account.v1.AccountService", "CheckAccountStatus")).toEqual(["scheduler"]);
    expect(callersOf("dronedelivery.package.v1.PackageService", "UpsertPackage")).toEqual(["scheduler"]);
    expect(callersOf("dronedelivery.package.v1.PackageService", "DeletePackage")).toEqual(["supervisor"]);
    expect(callersOf("dronedelivery.drone.v1.DroneSchedulerService", "GetAssignment")).toEqual(["delivery"]);
    expect(callersOf("dronedelivery.thirdparty.v1.ThirdPartyTransportService", "ArrangePickup")).toEqual(["scheduler"]);
    expect(callersOf("dronedelivery.thirdparty.v1.ThirdPartyTransportService", "CancelPickup")).toEqual(["scheduler", "supervisor"]);
  });

  it("opens health and reflection to every identity", () => {
    for (const service of ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]) {
      expect(callersOf(service, "Check"), service).toEqual(PKI_IDENTITIES);
    }
  });

  it("refuses what the table does not name, and calls without identity", () => {
    expect(authorize(DRONE, "Explode", "scheduler")).toEqual({ allowed: false, reason: `${DRONE}/Explode is not in the authorization table` });
    expect(authorize("x.v1.Unknown", "Get", "scheduler").allowed).toBe(false);
    expect(authorize("dronedelivery.api.v1.DeliveryApiService", "GetDelivery", "gateway").allowed).toBe(false);
    expect(authorize("grpc.health.v1.Health", "Check", undefined)).toEqual({
      allowed: false,
      reason: "grpc.health.v1.Health/Check: the caller presented no identity",
    });
    expect(authorize(DELIVERY, "GetDeliverySummary", "gateway")).toEqual({
      allowed: false,
      reason: `${DELIVERY}/GetDeliverySummary may be called by no internal caller, not by gateway`,
    });
  });

  it("knows every service of the platform as an identity", () => {
    expect(SERVICE_IDENTITIES).toEqual(["account", "package", "drone", "thirdparty", "delivery", "ingestion", "scheduler", "supervisor", "gateway"]);
  });
});
