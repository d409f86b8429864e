/**
 * The OpenAPI document the gateway serves at `/openapi.json`:
 * gen/openapi/dronedelivery-api.openapi.json, which `buf generate` writes from the contracts
 * (scripts/protoc-gen-openapi) and `make gen-check` keeps current. Imported, so that the compiled
 * gateway (scripts/build.mjs) carries it in its bundle.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import document from "../../gen/openapi/dronedelivery-api.openapi.json" with { type: "json" };

// The file is JSON by construction; its inferred literal type adds nothing.
export const OPENAPI_DOCUMENT = document as unknown as JsonObject;
