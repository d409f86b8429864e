import { mkdtempSync, rmSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../service/config.js";
import {
  DEFAULT_NATS_AUTH_DIR,
  ensureNatsAuth,
  ensureNatsAuthFromEnv,
  natsAuthDir,
  natsAuthEnabled,
  natsCredentialsFromEnv,
  NATS_USERS_FILE,
} from "./auth.js";
import { NATS_IDENTITIES, natsPermissionsOf } from "./permissions.js";

const root = mkdtempSync(path.join(tmpdir(), "dd-nats-auth-"));
let dirs = 0;
const freshDir = () => path.join(root, `auth-${++dirs}`);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("ensureNatsAuth", () => {
  it("makes one private password per identity, once", async () => {
    const dir = freshDir();
    const auth = await ensureNatsAuth(dir);
    expect(auth.identities).toEqual(NATS_IDENTITIES);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(auth.usersFile)).mode & 0o777).toBe(0o600);
    expect(auth.usersFile).toBe(path.join(dir, NATS_USERS_FILE));

    const passwords = new Set(NATS_IDENTITIES.map((id) => auth.credentialsOf(id).pass));
    expect(passwords.size).toBe(NATS_IDENTITIES.length);
    for (const pass of passwords) expect(pass.length).toBeGreaterThanOrEqual(32);
    expect(auth.credentialsOf("drone").user).toBe("drone");
    expect(auth.connectOptionsOf("drone")).toEqual({ ...auth.credentialsOf("drone"), inboxPrefix: "_INBOX.drone" });

    const again = await ensureNatsAuth(dir);
    for (const id of NATS_IDENTITIES) expect(again.credentialsOf(id)).toEqual(auth.credentialsOf(id));
  });

  it("adds missing identities and always admin, keeping the passwords already made", async () => {
    const dir = freshDir();
    const first = await ensureNatsAuth(dir, ["drone"]);
    expect(first.identities).toEqual(["drone", "admin"]);
    expect(() => first.credentialsOf("delivery")).toThrow(/no NATS credentials for "delivery"/);
    const second = await ensureNatsAuth(dir, ["delivery", "drone"]);
    expect(second.credentialsOf("drone")).toEqual(first.credentialsOf("drone"));
    expect(second.credentialsOf("admin")).toEqual(first.credentialsOf("admin"));
    expect(second.credentialsOf("delivery").pass).not.toBe(first.credentialsOf("drone").pass);
  });

  it("gives every process the same passwords when several make them at once", async () => {
    const dir = freshDir();
    const all = await Promise.all([1, 2, 3, 4].map(() => ensureNatsAuth(dir)));
    for (const auth of all) expect(auth.credentialsOf("scheduler")).toEqual(all[0]?.credentialsOf("scheduler"));
  });

  it("refuses an unknown identity and a damaged file", async () => {
    await expect(ensureNatsAuth(freshDir(), ["intruder" as never])).rejects.toThrow(ConfigError);
    const dir = freshDir();
    await ensureNatsAuth(dir);
    await writeFile(path.join(dir, NATS_USERS_FILE), "{ not json");
    await expect(ensureNatsAuth(dir)).rejects.toThrow(/not valid JSON/);
  });

  it("writes an authorization block with each user's permissions", async () => {
    const auth = await ensureNatsAuth(freshDir());
    const text = auth.configText;
    expect(text.startsWith("authorization {")).toBe(true);
    expect(text).toContain(`user: "scheduler"`);
    expect(text).toContain(`password: ${JSON.stringify(auth.credentialsOf("scheduler").pass)}`);
    for (const subject of natsPermissionsOf("drone").publish) expect(text).toContain(JSON.stringify(subject));
    expect(text).toContain(`subscribe: { allow: ["_INBOX.delivery.>", "drone.*.location"] }`);
  });
});

describe("natsCredentialsFromEnv", () => {
  it("reads the identity's password from NATS_AUTH_DIR, with its inbox prefix", async () => {
    const dir = freshDir();
    const auth = await ensureNatsAuth(dir);
    expect(natsCredentialsFromEnv({ NATS_AUTH_DIR: dir }, "delivery")).toEqual({
      user: "delivery",
      pass: auth.credentialsOf("delivery").pass,
      inboxPrefix: "_INBOX.delivery",
    });
    expect(() => natsCredentialsFromEnv({ NATS_AUTH_DIR: dir }, "intruder")).toThrow(/no NATS password for "intruder"/);
    expect(() => natsCredentialsFromEnv({ NATS_AUTH_DIR: dir }, "constructor")).toThrow(ConfigError);
  });

  it("prefers NATS_USER and NATS_PASSWORD", async () => {
    const dir = freshDir();
    await ensureNatsAuth(dir);
    expect(natsCredentialsFromEnv({ NATS_AUTH_DIR: dir, NATS_USER: "drone", NATS_PASSWORD: "p" }, "delivery")).toEqual({
      user: "drone",
      pass: "p",
      inboxPrefix: "_INBOX.drone",
    });
    expect(natsCredentialsFromEnv({ NATS_USER: "someone", NATS_PASSWORD: "p" }, "delivery")).toEqual({ user: "someone", pass: "p" });
  });

  it("gives nothing when NATS_AUTH is off or no credentials were made", async () => {
    const dir = freshDir();
    await ensureNatsAuth(dir);
    expect(natsCredentialsFromEnv({ NATS_AUTH_DIR: dir, NATS_AUTH: "off" }, "delivery")).toBeUndefined();
    expect(natsCredentialsFromEnv({ NATS_AUTH: "off", NATS_USER: "drone" }, "drone")).toBeUndefined();
    expect(natsCredentialsFromEnv({ NATS_AUTH_DIR: freshDir() }, "delivery")).toBeUndefined();
  });
});

describe("the NATS_AUTH switch and folder", () => {
  it("is on unless turned off, and refuses anything else", () => {
    for (const on of [undefined, "", "on", "true", "1", " ON "]) expect(natsAuthEnabled({ NATS_AUTH: on })).toBe(true);
    for (const off of ["off", "false", "0", "Off"]) expect(natsAuthEnabled({ NATS_AUTH: off })).toBe(false);
    expect(() => natsAuthEnabled({ NATS_AUTH: "maybe" })).toThrow(ConfigError);
  });

  it("keeps credentials under .run/nats-auth at the repository root unless NATS_AUTH_DIR says otherwise", () => {
    expect(natsAuthDir({})).toBe(DEFAULT_NATS_AUTH_DIR);
    expect(DEFAULT_NATS_AUTH_DIR.endsWith(path.join(".run", "nats-auth"))).toBe(true);
    expect(natsAuthDir({ NATS_AUTH_DIR: "some/where" })).toBe(path.resolve("some/where"));
  });

  it("makes a launcher's credentials only when auth is on", async () => {
    const dir = freshDir();
    expect(await ensureNatsAuthFromEnv({ NATS_AUTH: "off", NATS_AUTH_DIR: dir })).toBeUndefined();
    const auth = await ensureNatsAuthFromEnv({ NATS_AUTH_DIR: dir });
    expect(auth?.dir).toBe(dir);
    expect(JSON.parse(await readFile(path.join(dir, NATS_USERS_FILE), "utf8")).passwords.admin).toBe(auth?.credentialsOf("admin").pass);
  });
});
