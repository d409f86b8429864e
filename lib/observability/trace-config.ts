/**
 * Which span exporters the standard OpenTelemetry environment asks for. Tracing is off unless
 * something asks for it:
 *
 *   OTEL_SDK_DISABLED=true                 off, whatever else is set
 *   OTEL_TRACES_EXPORTER                   comma list of otlp | console | none; when unset: otlp if
 *                                          an OTLP endpoint below is set, else none
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT     full URL of the traces endpoint, used as is
 *   OTEL_EXPORTER_OTLP_ENDPOINT            base URL; `/v1/traces` is appended
 *                                          (neither set, `otlp` asked for: http://localhost:4318)
 *   OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS   `key=value,...` request headers
 *   OTEL_RESOURCE_ATTRIBUTES               `key=value,...` added to every service's resource
 *
 * OTLP is sent over HTTP (JSON); OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported (a warning).
 */
import { parseKeyPairsIntoRecord } from "@opentelemetry/core";

export type TracingEnv = Readonly<Record<string, string | undefined>>;

export type ExporterSpec =
  | { readonly kind: "otlp"; readonly url: string; readonly headers: Readonly<Record<string, string>> }
  | { readonly kind: "console" };

export interface TracingConfig {
  readonly exporters: readonly ExporterSpec[];
  /** Attributes from OTEL_RESOURCE_ATTRIBUTES. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Settings that were ignored, for the service to log. */
  readonly warnings: readonly string[];
}

export const DEFAULT_OTLP_TRACES_URL = "http://localhost:4318/v1/traces";

export function tracingConfigFromEnv(env: TracingEnv): TracingConfig {
  const warnings: string[] = [];
  const resourceAttributes = parsePairs(env, "OTEL_RESOURCE_ATTRIBUTES", warnings);
  if (value(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") {
    return { exporters: [], resourceAttributes, warnings };
  }
  const tracesEndpoint = value(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const baseEndpoint = value(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  const endpointSet = tracesEndpoint !== undefined || baseEndpoint !== undefined;
  const requested = value(env, "OTEL_TRACES_EXPORTER");
  const names =
    requested === undefined
      ? endpointSet
        ? ["otlp"]
        : []
      : requested
          .split(",")
          .map((name) => name.trim().toLowerCase())
          .filter((name) => name !== "");
  if (names.includes("none")) {
    return { exporters: [], resourceAttributes, warnings };
  }
  const exporters: ExporterSpec[] = [];
  for (const name of new Set(names)) {
    if (name === "otlp") {
      const protocol = value(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? value(env, "OTEL_EXPORTER_OTLP_PROTOCOL");
      if (protocol !== undefined && !protocol.startsWith("http/")) {
        warnings.push(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported; traces are sent as OTLP over HTTP`);
      }
      const url = tracesEndpoint ?? (baseEndpoint === undefined ? DEFAULT_OTLP_TRACES_URL : joinPath(baseEndpoint, "v1/traces"));
      const headers = {
        ...parsePairs(env, "OTEL_EXPORTER_OTLP_HEADERS", warnings),
        ...parsePairs(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", warnings),
      };
      exporters.push({ kind: "otlp", url, headers });
    } else if (name === "console") {
      exporters.push({ kind: "console" });
    } else {
      warnings.push(`OTEL_TRACES_EXPORTER: unknown exporter "${name}" ignored (otlp, console or none)`);
    }
  }
  return { exporters, resourceAttributes, warnings };
}

function value(env: TracingEnv, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === "" ? undefined : raw;
}

function joinPath(base: string, path: string): string {
  return base.endsWith("/") ? `${base}${path}` : `${base}/${path}`;
}

function parsePairs(env: TracingEnv, name: string, warnings: string[]): Record<string, string> {
  const raw = value(env, name);
  if (raw === undefined) {
    return {};
  }
  try {
    return parseKeyPairsIntoRecord(raw);
  } catch {
    warnings.push(`${name} is not a list of key=value pairs; ignored`);
    return {};
  }
}
