/**
 * The names the REST surface is built on beyond the contracts, in one place for the gateway that
 * acts on them and the OpenAPI document that shows them (scripts/protoc-gen-openapi): the event
 * id and resume fields of Server-Sent Events, the idempotency key, and the google.rpc details an
 * error body carries. Nothing here may import more than the generated code of google.rpc: the
 * OpenAPI plugin loads it at `buf generate` time.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { BadRequestSchema, PreconditionFailureSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** The field of a streamed message used as the event id. */
export const EVENT_ID_FIELD = "sequence";
/** The request field a `Last-Event-ID` header sets, when the request has it. */
export const RESUME_FIELD = "after_sequence";

/** The header that takes the place of a request's idempotency key field. */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
/** The request field that names an idempotency key, which the header may replace. */
export const IDEMPOTENCY_KEY_FIELD = "idempotency_key";

/** The google.rpc details an error body carries. */
export const DETAIL_TYPES: readonly DescMessage[] = [BadRequestSchema, PreconditionFailureSchema, RetryInfoSchema];
