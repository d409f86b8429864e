/**
 * The plugin's entry point: reads a CodeGeneratorRequest on stdin and writes the platform's
 * OpenAPI document (public-api.ts) in the CodeGeneratorResponse on stdout. buf.gen.yaml runs it
 * through protoc-gen-openapi.mjs; `node --import tsx scripts/protoc-gen-openapi/main.ts` is the same.
 */
import { runNodeJs } from "@bufbuild/protoplugin";
import { openApiPlugin } from "./plugin.js";
import { PUBLIC_API } from "./public-api.js";

runNodeJs(openApiPlugin(PUBLIC_API));
