/**
 * Where each service listens by default, in one table: a service's module uses its own entry,
 * callers use `serviceAddress` to find the others. Every default can be overridden: a service's
 * own port with `<NAME>_PORT`, the address its callers use with `<NAME>_ADDRESS`.
 */
import { envPrefix, envString, type Env } from "./config.js";

export const DEFAULT_PORTS = {
  account: 50051,
  package: 50052,
  drone: 50053,
  thirdparty: 50054,
  delivery: 50055,
  ingestion: 50056,
  scheduler: 50057,
  supervisor: 50058,
} as const;

export type ServiceName = keyof typeof DEFAULT_PORTS;

/** host:port of a service for its callers: `<NAME>_ADDRESS`, else 127.0.0.1 and its default port. */
export function serviceAddress(env: Env, name: ServiceName): string {
  return envString(env, `${envPrefix(name)}ADDRESS`, `127.0.0.1:${DEFAULT_PORTS[name]}`);
}
