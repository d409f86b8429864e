/**
 * Reading configuration from environment variables, with defaults and clear errors: a bad value
 * stops the process at start with a message naming the variable, never later.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function envString(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim();
  return value ? value : fallback;
}

export function envInt(env: Env, name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value)) throw new ConfigError(`${name}=${raw} is not an integer`);
  if (range.min !== undefined && value < range.min) throw new ConfigError(`${name}=${raw} is below ${range.min}`);
  if (range.max !== undefined && value > range.max) throw new ConfigError(`${name}=${raw} is above ${range.max}`);
  return value;
}

export function envNumber(env: Env, name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new ConfigError(`${name}=${raw} is not a number`);
  if (range.min !== undefined && value < range.min) throw new ConfigError(`${name}=${raw} is below ${range.min}`);
  if (range.max !== undefined && value > range.max) throw new ConfigError(`${name}=${raw} is above ${range.max}`);
  return value;
}

/** The environment-variable prefix of a service: "thirdparty" -> "THIRDPARTY_". */
export function envPrefix(serviceName: string): string {
  return `${serviceName.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_`;
}

/** Where a process listens when nothing says otherwise: loopback, the development setup. */
export const DEFAULT_BIND_HOST = "127.0.0.1";

/**
 * The interface a process binds its listeners to: `<NAME>_HOST` (e.g. DELIVERY_HOST,
 * GATEWAY_HOST), else `BIND_HOST` (every process; `0.0.0.0` in a container), else `GRPC_HOST`
 * (the older name), else 127.0.0.1. Where callers reach it is a separate setting
 * (`<NAME>_ADDRESS`, lib/service/ports.ts): binding 0.0.0.0 does not make an address to dial.
 */
export function bindHost(env: Env, name: string): string {
  return envString(env, `${envPrefix(name)}HOST`, envString(env, "BIND_HOST", envString(env, "GRPC_HOST", DEFAULT_BIND_HOST)));
}
