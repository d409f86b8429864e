/**
 * `GET /openapi.json`: the document, serialised once, answered as `application/json` to anyone
 * (no authentication). HEAD answers the headers alone.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { JsonObject } from "@bufbuild/protobuf";

export const OPENAPI_PATH = "/openapi.json";

export function openApiEndpoint(document: JsonObject): (req: IncomingMessage, res: ServerResponse) => void {
  const body = Buffer.from(JSON.stringify(document));
  return (req, res) => {
    res.statusCode = 200;
    res.setHeader("content-type", "application/json");
    res.setHeader("content-length", body.length);
    res.setHeader("cache-control", "no-cache");
    res.end(req.method === "HEAD" ? undefined : body);
  };
}
