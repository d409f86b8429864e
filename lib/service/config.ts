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
