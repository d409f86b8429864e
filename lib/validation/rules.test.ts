// The field rules come from the contracts' descriptors: nothing in code states them.
import { create, createFileRegistry, getOption, setExtension, type DescMessage } from "@bufbuild/protobuf";
import { FieldOptionsSchema, FileDescriptorProtoSchema, timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { field as fieldRules, FieldRulesSchema, file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { LocationSchema } from "../../gen/dronedelivery/common/v1/location_pb.js";
import { PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { ScheduleDeliveryRequestSchema } from "../../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { ArrangePickupRequestSchema } from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { ruleViolations } from "./rules.js";

const LATER = timestampFromDate(new Date(Date.now() + 86_400_000));

function schedule(change: (r: ReturnType<typeof create<typeof ScheduleDeliveryRequestSchema>>) => void = () => {}) {
  const request = create(ScheduleDeliveryRequestSchema, {
    idempotencyKey: "k-1",
    ownerId: "acct-1",
    pickup: { latitude: 47.6, longitude: -122.3 },
    dropoff: { latitude: 47.7, longitude: -122.4 },
    deadline: LATER,
    confirmationRequired: 1,
    packages: [{ packageId: "p-1", size: PackageSize.SMALL, weightKg: 1 }],
  });
  change(request);
  return request;
}

describe("rules declared in the contracts", () => {
  it("refuses a value outside the bounds the contract declares, at the bounds it declares", () => {
    // The bounds are read from the descriptor, as the validator reads them.
    const declared = getOption(LocationSchema.field.latitude, fieldRules);
    expect(declared.type.case).toBe("double");
    const bounds = declared.type.value as { lessThan: { value: number }; greaterThan: { value: number } };
    const max = bounds.lessThan.value;
    expect(ruleViolations(ScheduleDeliveryRequestSchema, schedule((r) => (r.pickup!.latitude = max)))).toEqual([]);
    const over = ruleViolations(ScheduleDeliveryRequestSchema, schedule((r) => (r.pickup!.latitude = max + 0.001)));
    expect(over.map((v) => v.field)).toEqual(["pickup.latitude"]);
    expect(over[0]?.description).toContain(String(max));
  });

  it("enforces a rule that exists only in a descriptor", () => {
    // A contract no code was generated or written for: one field, at most 3 characters.
    const file = create(FileDescriptorProtoSchema, {
      name: "example/v1/note.proto",
      package: "example.v1",
      dependency: ["buf/validate/validate.proto"],
      syntax: "proto3",
      messageType: [{ name: "Note", field: [{ name: "text", number: 1, type: 9, label: 1, jsonName: "text" }] }],
    });
    const text = file.messageType[0]!.field[0]!;
    text.options = create(FieldOptionsSchema, {});
    const rules = create(FieldRulesSchema, { type: { case: "string", value: { maxLen: 3n } } });
    setExtension(text.options, fieldRules, rules);
    const registry = createFileRegistry(file, (name) => (name === "buf/validate/validate.proto" ? file_buf_validate_validate : undefined));
    const Note = registry.getMessage("example.v1.Note") as DescMessage;
    expect(ruleViolations(Note, create(Note, { text: "abc" } as never))).toEqual([]);
    expect(ruleViolations(Note, create(Note, { text: "abcd" } as never))).toEqual([{ field: "text", description: "must be at most 3 characters" }]);
  });

  it("reports a message-level rule on the field its id names, nested ones under their message's path", () => {
    const late = ruleViolations(ScheduleDeliveryRequestSchema, schedule((r) => (r.pickupTime = timestampFromDate(new Date(Date.now() + 2 * 86_400_000)))));
    expect(late).toEqual([{ field: "pickup_time", description: "must not lie after deadline" }]);
    const window = create(ArrangePickupRequestSchema, {
      deliveryId: "d-1",
      ownerId: "acct-1",
      pickup: { latitude: 1, longitude: 1 },
      dropoff: { latitude: 2, longitude: 2 },
      packages: [{ packageId: "p-1", size: PackageSize.LARGE, weightKg: 30 }],
      pickupWindow: { startTime: LATER, endTime: timestampNow() },
    });
    expect(ruleViolations(ArrangePickupRequestSchema, window).map((v) => v.field)).toEqual([
      "pickup_window.end_time",
      "pickup_window.end_time",
    ]);
  });

  it("refuses a timestamp that google.protobuf.Timestamp does not allow", () => {
    const bad = schedule((r) => (r.deadline = { ...LATER, nanos: -1 }));
    expect(ruleViolations(ScheduleDeliveryRequestSchema, bad)).toEqual([
      { field: "deadline", description: expect.stringContaining("is not a valid timestamp") },
    ]);
    // Reported once as malformed, not again by the rule comparing it with the deadline.
    const far = schedule((r) => {
      r.packages = [];
      r.pickupTime = { ...LATER, seconds: 10n ** 15n };
    });
    expect(ruleViolations(ScheduleDeliveryRequestSchema, far).map((v) => v.field)).toEqual(["pickup_time", "packages"]);
  });
});
