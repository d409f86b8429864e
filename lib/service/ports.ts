/**
 * Where each service listens by default, derived from the service registry (registry.ts): a
 * service's module uses its own entry, callers use `serviceAddress` to find the others. Every
 * default can be overridden: a service's own port with `<NAME>_PORT`, the address its callers
 * use with `<NAME>_ADDRESS`.
 */
import { envPrefix, envString, type Env } from "./config.js";
import { PLATFORM_REGISTRY, serviceEntries, type Registry, type ServiceName } from "./registry.js";

export type { ServiceName } from "./registry.js";

/** The default gRPC port of every service of a registry, by name. */
export function portTable(registry: Registry): Readonly<Record<string, number>> {
  return Object.fromEntries(serviceEntries(registry).map((entry) => [entry.name, entry.port]));
}

/** The platform's services and their default ports, in the registry's order. */
export const DEFAULT_PORTS = portTable(PLATFORM_REGISTRY) as Readonly<Record<ServiceName, number>>;

/** host:port of a service for its callers: `<NAME>_ADDRESS`, else 127.0.0.1 and its default port. */
export function serviceAddress(env: Env, name: ServiceName, ports: Readonly<Record<string, number>> = DEFAULT_PORTS): string {
  return envString(env, `${envPrefix(name)}ADDRESS`, `127.0.0.1:${ports[name]}`);
}
