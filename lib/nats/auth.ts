/**
 * NATS credentials of each identity, and the nats-server `authorization` block that gives every
 * user the permissions of lib/nats/permissions.ts.
 *
 * One user per identity (the user name is the identity: `account`, ..., `supervisor`, `admin`),
 * each with a random password made once and kept in `<dir>/nats-users.json` (mode 0600, the
 * folder 0700). The launcher writes the block into the server's configuration file; a process
 * finds its credentials with `natsCredentialsFromEnv(env, identity)`:
 *
 *   NATS_AUTH       on (default) or off. off: connect without credentials (debugging only; the
 *                   launcher then starts the server without authorization).
 *   NATS_USER, NATS_PASSWORD   credentials to use as they are, when NATS_USER is set.
 *   NATS_AUTH_DIR   where nats-users.json is (default `<repository>/.run/nats-auth`); when the
 *                   file is not there, a process connects without credentials.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { withFileLock, writeFileAtomic } from "../security/file-lock.js";
import { ConfigError, envString, type Env } from "../service/config.js";
import { PLATFORM_REGISTRY, type Registry } from "../service/registry.js";
import {
  ADMIN_IDENTITY,
  inboxPrefixOf,
  isNatsIdentity,
  NATS_IDENTITIES,
  natsIdentitiesOf,
  natsPermissionsIn,
  type NatsIdentity,
  type NatsPermissions,
} from "./permissions.js";

/** The credentials file inside the auth folder. */
export const NATS_USERS_FILE = "nats-users.json";
/** Held while a process makes or extends the credentials file. */
const LOCK_FILE = ".lock";
const USERS_FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/** `<repository>/.run/nats-auth`, git-ignored with the rest of `.run/`. */
export const DEFAULT_NATS_AUTH_DIR = fileURLToPath(new URL("../../.run/nats-auth", import.meta.url));

/** A NATS user name and password (nats.js ConnectionOptions `user` and `pass`). */
export interface NatsCredentials {
  readonly user: string;
  readonly pass: string;
}

/**
 * What a connection needs to act as an identity, ready to spread into connectNats options: the
 * credentials, and the inbox prefix its subscribe permission allows (`_INBOX.<identity>`).
 */
export interface NatsIdentityAuth extends NatsCredentials {
  readonly inboxPrefix?: string;
}

/** The credentials of a set of identities and the server configuration that goes with them. */
export interface NatsAuth {
  /** The auth folder. */
  readonly dir: string;
  /** `<dir>/nats-users.json` */
  readonly usersFile: string;
  /** The identities the configuration names (always including admin). */
  readonly identities: readonly string[];
  /** The nats-server `authorization { users = [...] }` block. */
  readonly configText: string;
  /** The user name and password of an identity of `identities`. */
  credentialsOf(identity: string): NatsCredentials;
  /** The credentials and inbox prefix of an identity, for connectNats. */
  connectOptionsOf(identity: string): NatsIdentityAuth;
}

/** Contents of nats-users.json. */
interface UsersFile {
  readonly version: 1;
  /** Password of each identity (the user name is the identity). */
  readonly passwords: Readonly<Record<string, string>>;
}

function newPassword(): string {
  return randomBytes(24).toString("base64url");
}

function parseUsersFile(text: string, file: string): UsersFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file} is not valid JSON (delete it to make new NATS credentials)`, { cause: error });
  }
  const passwords = (parsed as Partial<UsersFile> | null)?.passwords;
  if (typeof passwords !== "object" || passwords === null || Object.values(passwords).some((p) => typeof p !== "string" || p === "")) {
    throw new ConfigError(`${file} does not hold NATS passwords (delete it to make new NATS credentials)`);
  }
  return { version: 1, passwords };
}

function isMissing(error: unknown): boolean {
  return typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT";
}

/** The `authorization` block for these users, each with its identity's permissions. */
export function authorizationBlock(users: readonly { credentials: NatsCredentials; permissions: NatsPermissions }[]): string {
  const list = (subjects: readonly string[]) => `[${subjects.map((s) => JSON.stringify(s)).join(", ")}]`;
  const entries = users.map(({ credentials, permissions }) =>
    [
      "    {",
      `      user: ${JSON.stringify(credentials.user)}`,
      `      password: ${JSON.stringify(credentials.pass)}`,
      "      permissions: {",
      `        publish: { allow: ${list(permissions.publish)} }`,
      `        subscribe: { allow: ${list(permissions.subscribe)} }`,
      "      }",
      "    }",
    ].join("\n"),
  );
  return ["authorization {", "  users = [", ...entries, "  ]", "}", ""].join("\n");
}

/**
 * Makes sure `<dir>/nats-users.json` holds a password for each identity (admin always included),
 * making the missing ones; passwords already there are kept, so servers and processes started
 * earlier keep working. Safe when several processes call it at once. The identities and their
 * permissions are those of `registry` (the platform's by default; a test may pass its own).
 */
export async function ensureNatsAuth(
  dir: string,
  identities: readonly string[] = NATS_IDENTITIES,
  registry: Registry = PLATFORM_REGISTRY,
): Promise<NatsAuth> {
  const known = natsIdentitiesOf(registry);
  for (const identity of identities) {
    if (!known.includes(identity)) throw new ConfigError(`"${identity}" is not a NATS identity (one of ${known.join(", ")})`);
  }
  const wanted: string[] = [...new Set<string>([...identities, ADMIN_IDENTITY])];
  const root = path.resolve(dir);
  const usersFile = path.join(root, NATS_USERS_FILE);
  await mkdir(root, { recursive: true, mode: DIR_MODE });

  const passwords = await withFileLock(path.join(root, LOCK_FILE), async () => {
    let current: Record<string, string> = {};
    try {
      current = { ...parseUsersFile(await readFile(usersFile, "utf8"), usersFile).passwords };
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    const missing = wanted.filter((identity) => current[identity] === undefined);
    for (const identity of missing) current[identity] = newPassword();
    if (missing.length > 0) {
      const contents: UsersFile = { version: 1, passwords: current };
      await writeFileAtomic(usersFile, JSON.stringify(contents, null, 2) + "\n", USERS_FILE_MODE);
    } else {
      await chmod(usersFile, USERS_FILE_MODE);
    }
    return current;
  });

  const credentialsOf = (identity: string): NatsCredentials => {
    const pass = wanted.includes(identity) ? passwords[identity] : undefined;
    if (pass === undefined) throw new Error(`no NATS credentials for "${identity}" here (made for ${wanted.join(", ")})`);
    return { user: identity, pass };
  };
  const configText = authorizationBlock(
    wanted.map((identity) => ({ credentials: credentialsOf(identity), permissions: natsPermissionsIn(registry, identity) })),
  );
  return {
    dir: root,
    usersFile,
    identities: wanted,
    configText,
    credentialsOf,
    connectOptionsOf: (identity) => ({ ...credentialsOf(identity), inboxPrefix: inboxPrefixOf(identity) }),
  };
}

/**
 * Whether NATS authorization is on: `NATS_AUTH` unset, "on", "true" or "1" means yes; "off",
 * "false" or "0" means no (debugging only: every connection may do everything). Any other
 * value is a configuration error.
 */
export function natsAuthEnabled(env: Env): boolean {
  const raw = env["NATS_AUTH"]?.trim().toLowerCase();
  if (raw === undefined || raw === "" || raw === "on" || raw === "true" || raw === "1") return true;
  if (raw === "off" || raw === "false" || raw === "0") return false;
  throw new ConfigError(`NATS_AUTH=${env["NATS_AUTH"]} is neither on nor off`);
}

/** The auth folder: `NATS_AUTH_DIR`, else `<repository>/.run/nats-auth`. */
export function natsAuthDir(env: Env): string {
  return path.resolve(envString(env, "NATS_AUTH_DIR", DEFAULT_NATS_AUTH_DIR));
}

/**
 * For a launcher: the credentials and server configuration to start nats-server with, made
 * under natsAuthDir(env) as needed; undefined when NATS_AUTH is off.
 */
export async function ensureNatsAuthFromEnv(env: Env, identities: readonly NatsIdentity[] = NATS_IDENTITIES): Promise<NatsAuth | undefined> {
  return natsAuthEnabled(env) ? ensureNatsAuth(natsAuthDir(env), identities) : undefined;
}

/**
 * How a process connects as `identity`, to spread into connectNats options:
 *   - undefined when NATS_AUTH is off;
 *   - NATS_USER / NATS_PASSWORD when NATS_USER is set (with the inbox prefix of that user when
 *     it is an identity);
 *   - else the identity's password from `<NATS_AUTH_DIR>/nats-users.json`, and its inbox prefix;
 *   - undefined when that file does not exist (a server started without authorization).
 * Throws ConfigError when the file exists but holds no password for the identity.
 */
export function natsCredentialsFromEnv(env: Env, identity: string): NatsIdentityAuth | undefined {
  if (!natsAuthEnabled(env)) return undefined;
  const user = env["NATS_USER"]?.trim();
  if (user) {
    return { user, pass: env["NATS_PASSWORD"] ?? "", ...(isNatsIdentity(user) ? { inboxPrefix: inboxPrefixOf(user) } : {}) };
  }
  const usersFile = path.join(natsAuthDir(env), NATS_USERS_FILE);
  let text: string;
  try {
    text = readFileSync(usersFile, "utf8");
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  const { passwords } = parseUsersFile(text, usersFile);
  const pass = Object.hasOwn(passwords, identity) ? passwords[identity] : undefined;
  if (pass === undefined) {
    throw new ConfigError(`${usersFile} holds no NATS password for "${identity}"; set NATS_USER and NATS_PASSWORD, or NATS_AUTH=off`);
  }
  return { user: identity, pass, inboxPrefix: inboxPrefixOf(identity) };
}
