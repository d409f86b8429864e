/**
 * The development signing secret, used when GATEWAY_JWT_SECRET is not set: generated once and kept
 * in a git-ignored file so that tokens minted with `mint-token` stay valid across restarts.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** The secret stored in `file`, or undefined when there is none. */
export function readDevSecret(file: string): string | undefined {
  try {
    const secret = readFileSync(file, "utf8").trim();
    return secret === "" ? undefined : secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The secret stored in `file`; a new random one is written there first when there is none. */
export function loadOrCreateDevSecret(file: string): string {
  const existing = readDevSecret(file);
  if (existing) return existing;
  mkdirSync(path.dirname(file), { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
    return secret;
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return readDevSecret(file) ?? secret;
    throw error;
  }
}
