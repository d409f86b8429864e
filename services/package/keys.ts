/**
 * Package ids as bucket keys. A package id may contain '.', which separates the tokens of a
 * NATS subject (and so of a KV key): "a..b", ".a" or "a." would be invalid keys, and a dot would
 * split one id into several tokens. Each '.' is therefore written as '=', a character that keys
 * allow and package ids never contain, which keeps the mapping one-to-one and reversible.
 */
import { ID_PATTERN, MAX_ID_LENGTH } from "../../lib/validation/ids.js";

/** Every package entry lives under this prefix; `pkg.>` lists them all. */
export const PACKAGE_KEY_PREFIX = "pkg.";
/** Filter matching every package entry of the bucket. */
export const ALL_PACKAGES_FILTER = `${PACKAGE_KEY_PREFIX}>`;

/** The bucket key of a package id, e.g. `box.1` -> `pkg.box=1`. */
export function packageKey(packageId: string): string {
  if (packageId.length === 0 || packageId.length > MAX_ID_LENGTH || !ID_PATTERN.test(packageId)) {
    throw new TypeError(`not a package id: ${JSON.stringify(packageId)}`);
  }
  return PACKAGE_KEY_PREFIX + packageId.replaceAll(".", "=");
}

/** The package id stored under a bucket key; undefined for keys that are not package entries. */
export function packageIdOf(key: string): string | undefined {
  if (!key.startsWith(PACKAGE_KEY_PREFIX)) return undefined;
  const token = key.slice(PACKAGE_KEY_PREFIX.length);
  return token.length > 0 && !token.includes(".") ? token.replaceAll("=", ".") : undefined;
}
