/**
 * A field's `google.api.field_behavior` marks: REQUIRED fields must be sent, OUTPUT_ONLY ones
 * only ever appear in answers, INPUT_ONLY ones only in requests. A field whose protovalidate
 * rules say `required` must be sent too.
 */
import { getOption, type DescField } from "@bufbuild/protobuf";
import { field_behavior, FieldBehavior } from "../../gen/google/api/field_behavior_pb.js";
import { requiredByRules } from "./field-rules.js";

function behaviorsOf(field: DescField): readonly FieldBehavior[] {
  return getOption(field, field_behavior);
}

export function isOutputOnly(field: DescField): boolean {
  return behaviorsOf(field).includes(FieldBehavior.OUTPUT_ONLY);
}

export function isInputOnly(field: DescField): boolean {
  return behaviorsOf(field).includes(FieldBehavior.INPUT_ONLY);
}

/** REQUIRED (or required by its rules) and not OUTPUT_ONLY: a request must carry it. */
export function isRequired(field: DescField): boolean {
  return (behaviorsOf(field).includes(FieldBehavior.REQUIRED) || requiredByRules(field)) && !isOutputOnly(field);
}
