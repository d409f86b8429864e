/**
 * Settings that keep what a test starts away from the repository's `.run/` (the state of a
 * `make run` that may be up on the same machine): without them a service, a tool or a spawned
 * process falls back to `.run/nats-auth`, `.run/pki` and `.run/gateway-dev-secret`.
 */
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A NATS auth folder that never exists: a process connects without credentials, as the test
 * nats-servers (without users) expect. Tests that run an authorizing server give their own.
 */
export const NO_NATS_AUTH_DIR = path.join(tmpdir(), "dd-test-no-nats-auth-never-created");

/** Environment entries for a process (or an in-process service) a test starts. */
export function hermeticEnv(): Record<string, string> {
  return { NATS_AUTH_DIR: NO_NATS_AUTH_DIR };
}
