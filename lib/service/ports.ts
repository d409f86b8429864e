/**
 * Where each service listens by default, in one table: a service's module uses its own entry,
 * callers use `serviceAddress` to find the others. Every default can be overridden: a service's
 * own port with `<NAME>_PORT`, the address its callers use with `<NAME>_ADDRESS`.
 *
 * The ports lie below Linux's ephemeral range (32768-60999): a port in it can be taken at any
 * moment by an outgoing connection (a service's own NATS connection, made while another service
 * is still starting), and the service that owns the port then cannot bind it. Metrics ports
 * (+1000) and further instances (+100 each, `make run`) stay below it too.
 */
import { envPrefix, envString, type Env } from "./config.js";

export const DEFAULT_PORTS = {
  account: 7051,
  package: 7052,
  drone: 7053,
  thirdparty: 7054,
  delivery: 7055,
  ingestion: 7056,
  scheduler: 7057,
  supervisor: 7058,
} as const;

export type ServiceName = keyof typeof DEFAULT_PORTS;

/** host:port of a service for its callers: `<NAME>_ADDRESS`, else 127.0.0.1 and its default port. */
export function serviceAddress(env: Env, name: ServiceName): string {
  return envString(env, `${envPrefix(name)}ADDRESS`, `127.0.0.1:${DEFAULT_PORTS[name]}`);
}
