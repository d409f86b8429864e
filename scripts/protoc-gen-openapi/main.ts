/**
 * The entry point `buf generate` runs (buf.gen.yaml: `node --import tsx
 * scripts/protoc-gen-openapi/main.ts`): reads a CodeGeneratorRequest on stdin and writes the
 * platform's OpenAPI document (public-api.ts) in the CodeGeneratorResponse on stdout.
 */
import { runNodeJs } from "@bufbuild/protoplugin";
import { openApiPlugin } from "./plugin.js";
import { PUBLIC_API } from "./public-api.js";

runNodeJs(openApiPlugin(PUBLIC_API));
