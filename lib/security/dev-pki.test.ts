// The development PKI on a real folder: what it makes, what it keeps, when it remakes, and two
// processes (and two parallel calls) making it at once.

import { execFile, spawnSync } from "node:child_process";
import { X509Certificate, createPrivateKey, generateKeyPairSync } from "node:crypto";
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCaCertificate } from "./certificates.js";
import { loadIdentity, PkiLoadError } from "./credentials.js";
import { ensureDevPki, type DevPki } from "./dev-pki.js";
import { spiffeId } from "./identities.js";
import { identityFromCertificate } from "./peer-identity.js";
import { LOCK_FILE } from "./pki-files.js";
import { uriSubjectAltNames } from "./subject-alt-names.js";

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHILD = fileURLToPath(new URL("./test-support/ensure-pki-process.ts", import.meta.url));
const DAY_MS = 24 * 60 * 60 * 1000;
const IDENTITIES = ["drone", "scheduler", "gateway"];
// Keys and certificates take milliseconds; the two-process test starts node twice, so give a busy
// 2-core machine room all the same.
const SLOW = { timeout: 120_000 };

let root: string;
let counter = 0;
const freshDir = (): string => join(root, `pki-${++counter}`);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "dev-pki-test-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every identity certificate is signed by the CA, matches its key and names its identity. */
async function expectConsistent(dir: string, identities: readonly string[]): Promise<X509Certificate> {
  const ca = new X509Certificate(await readFile(join(dir, "ca.crt")));
  expect(ca.checkPrivateKey(createPrivateKey(await readFile(join(dir, "ca.key"))))).toBe(true);
  for (const identity of identities) {
    const cert = new X509Certificate(await readFile(join(dir, `${identity}.crt`)));
    expect(cert.verify(ca.publicKey), `${identity} signed by the CA`).toBe(true);
    const key = createPrivateKey(await readFile(join(dir, `${identity}.key`)));
    expect(cert.checkPrivateKey(key), `${identity} key`).toBe(true);
    expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve], `${identity} key type`).toEqual(["ec", "prime256v1"]);
    expect(uriSubjectAltNames(cert.subjectAltName)).toEqual([spiffeId(identity)]);
  }
  return ca;
}

describe("ensureDevPki", () => {
  let dir: string;
  let first: DevPki;

  beforeAll(async () => {
    dir = freshDir();
    first = await ensureDevPki(dir, IDENTITIES);
  }, 120_000);

  it("makes a CA and one certificate per identity, keys readable by the owner only", async () => {
    expect(first.changes.map((c) => c.subject)).toEqual(["ca", ...IDENTITIES]);
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(["ca.crt", "ca.key", ...IDENTITIES.flatMap((i) => [`${i}.crt`, `${i}.key`])].sort());
    for (const key of files.filter((f) => f.endsWith(".key"))) {
      expect((await stat(join(dir, key))).mode & 0o777, key).toBe(0o600);
    }
    const ca = await expectConsistent(dir, IDENTITIES);
    expect(ca.ca).toBe(true);
    expect(ca.subject).toContain("CN=dronedelivery development CA");
    expect(new Date(ca.validTo).getTime() - Date.now()).toBeGreaterThan(360 * DAY_MS);
  });

  it("issues certificates that serve as client and server certificates on loopback", () => {
    const cert = new X509Certificate(first.material("drone").certPem);
    expect(cert.subject).toContain("CN=drone");
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
    expect(cert.subjectAltName).toBe(
      "URI:spiffe://dronedelivery.local/drone, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    expect(cert.checkHost("localhost")).toBe("localhost");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.checkIP("::1")).toBe("::1");
    expect(identityFromCertificate({ subject: { CN: "drone" } as never, subjectaltname: cert.subjectAltName ?? "" })).toBe("drone");
    const days = (new Date(cert.validTo).getTime() - Date.now()) / DAY_MS;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
  });

  it("keeps valid files and returns the same material", async () => {
    const again = await ensureDevPki(dir, IDENTITIES);
    expect(again.changes).toEqual([]);
    expect(again.caPem.equals(first.caPem)).toBe(true);
    for (const identity of IDENTITIES) {
      expect(again.material(identity).certPem.equals(first.material(identity).certPem)).toBe(true);
      expect(again.material(identity).keyPem.equals(first.material(identity).keyPem)).toBe(true);
    }
    expect(() => again.material("account")).toThrow(/no certificate for "account"/);
  });

  it("loads an identity's material from the folder", async () => {
    const loaded = await loadIdentity(dir, "scheduler");
    expect(loaded.identity).toBe("scheduler");
    expect(loaded.caPem.equals(first.caPem)).toBe(true);
    expect(loaded.certPem.equals(first.material("scheduler").certPem)).toBe(true);
    await expect(loadIdentity(dir, "account", { settleMs: 0 })).rejects.toThrow(PkiLoadError);
    await expect(loadIdentity(dir, "../ca", { settleMs: 0 })).rejects.toThrow(/not an identity name/);
  });

  it("refuses names that cannot be identities", async () => {
    await expect(ensureDevPki(freshDir(), ["ca"])).rejects.toThrow(/not an identity name/);
    await expect(ensureDevPki(freshDir(), ["../x"])).rejects.toThrow(/not an identity name/);
  });
});

describe("ensureDevPki regenerates", () => {
  it("a missing or damaged identity alone", SLOW, async () => {
    const dir = freshDir();
    const before = await ensureDevPki(dir, IDENTITIES);
    await unlink(join(dir, "drone.key"));
    await writeFile(join(dir, "gateway.crt"), "not a certificate");
    const after = await ensureDevPki(dir, IDENTITIES);
    expect(after.changes).toEqual([
      { subject: "drone", reason: "drone: no key" },
      { subject: "gateway", reason: "gateway: the certificate cannot be read" },
    ]);
    expect(after.caPem.equals(before.caPem)).toBe(true);
    expect(after.material("scheduler").certPem.equals(before.material("scheduler").certPem)).toBe(true);
    await expectConsistent(dir, IDENTITIES);
  });

  it("a certificate signed by another CA", SLOW, async () => {
    const dir = freshDir();
    const other = freshDir();
    await ensureDevPki(dir, IDENTITIES);
    await ensureDevPki(other, ["drone"]);
    await cp(join(other, "drone.crt"), join(dir, "drone.crt"));
    await cp(join(other, "drone.key"), join(dir, "drone.key"));
    const after = await ensureDevPki(dir, IDENTITIES);
    expect(after.changes).toEqual([{ subject: "drone", reason: "drone: the certificate is not signed by the current CA" }]);
    await expectConsistent(dir, IDENTITIES);
  });

  it("identity certificates about to expire, then everything when the CA is about to expire", SLOW, async () => {
    const dir = freshDir();
    const start = Date.now();
    const at = (days: number) => ({ now: () => new Date(start + days * DAY_MS) });
    const created = await ensureDevPki(dir, IDENTITIES, at(0));

    const keptEarly = await ensureDevPki(dir, IDENTITIES, at(20));
    expect(keptEarly.changes).toEqual([]);

    const renewed = await ensureDevPki(dir, IDENTITIES, at(24));
    expect(renewed.changes.map((c) => c.subject)).toEqual(IDENTITIES);
    expect(renewed.changes[0]?.reason).toMatch(/^drone: expires at .*, too soon$/);
    expect(renewed.caPem.equals(created.caPem)).toBe(true);
    const renewedCert = new X509Certificate(renewed.material("drone").certPem);
    expect(new Date(renewedCert.validTo).getTime()).toBeGreaterThan(start + 53 * DAY_MS);

    const expired = await ensureDevPki(dir, IDENTITIES, at(60));
    expect(expired.changes.map((c) => c.subject)).toEqual(IDENTITIES);
    expect(expired.changes[0]?.reason).toMatch(/^drone: expired at /);

    const caRenewed = await ensureDevPki(dir, IDENTITIES, at(340));
    expect(caRenewed.changes.map((c) => c.subject)).toEqual(["ca", ...IDENTITIES]);
    expect(caRenewed.changes.slice(1).every((c) => c.reason === "the CA was replaced")).toBe(true);
    expect(caRenewed.caPem.equals(created.caPem)).toBe(false);
  });

  it("a shorter lifetime when asked", SLOW, async () => {
    const dir = freshDir();
    const pki = await ensureDevPki(dir, ["drone"], { certValidityDays: 2, renewWithinDays: 1, caValidityDays: 10 });
    const cert = new X509Certificate(pki.material("drone").certPem);
    expect(new Date(cert.validTo).getTime() - Date.now()).toBeLessThanOrEqual(2 * DAY_MS);
    expect((await ensureDevPki(dir, ["drone"], { certValidityDays: 2, renewWithinDays: 1, caValidityDays: 10 })).changes).toEqual([]);
    await expect(ensureDevPki(dir, ["drone"], { certValidityDays: 2, renewWithinDays: 2 })).rejects.toThrow(/renewWithinDays/);
  });

  it("missing identity certificates under a kept CA whose key is RSA (made before keys were EC), which signs them", SLOW, async () => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const caPem = await buildCaCertificate({ keyPem: privateKey, publicKeyPem: publicKey }, { now: new Date(), validityDays: 365 });
    await writeFile(join(dir, "ca.key"), privateKey, { mode: 0o600 });
    await writeFile(join(dir, "ca.crt"), caPem);
    const pki = await ensureDevPki(dir, IDENTITIES);
    expect(pki.changes.map((c) => c.subject)).toEqual(IDENTITIES);
    expect(pki.caPem.toString()).toBe(caPem);
    const ca = new X509Certificate(caPem);
    expect(ca.publicKey.asymmetricKeyType).toBe("rsa");
    for (const identity of IDENTITIES) {
      expect(new X509Certificate(pki.material(identity).certPem).verify(ca.publicKey), identity).toBe(true);
    }
    await expectConsistent(dir, IDENTITIES);
  });

  it("after a stale lock left by a process that died", SLOW, async () => {
    const dir = freshDir();
    await ensureDevPki(dir, ["drone"]);
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    await writeFile(join(dir, LOCK_FILE), `${dead} 0123456789abcdef`);
    await unlink(join(dir, "drone.crt"));
    const pki = await ensureDevPki(dir, ["drone"], { lockTimeoutMs: 10_000 });
    expect(pki.changes.map((c) => c.subject)).toEqual(["drone"]);
    expect((await readdir(dir)).sort()).toEqual(["ca.crt", "ca.key", "drone.crt", "drone.key"]);
  });
});

describe("ensureDevPki run at once", () => {
  it("by two processes leaves one consistent set that both return", SLOW, async () => {
    const dir = freshDir();
    const identities = ["account", "package", "drone", "scheduler", "gateway"];
    const child = () => run(process.execPath, ["--import", "tsx", CHILD, dir, ...identities], { cwd: REPO_ROOT });
    const results = await Promise.all([child(), child()]);
    const [a, b] = results.map(({ stdout }) => JSON.parse(stdout) as { ca: string; certs: Record<string, string>; changes: number });
    expect(a?.ca).toBe(b?.ca);
    expect(a?.certs).toEqual(b?.certs);
    // One process made everything; the other found it made.
    expect([a?.changes, b?.changes].sort()).toEqual([0, identities.length + 1]);
    const ca = await expectConsistent(dir, identities);
    expect(await readFile(join(dir, "ca.crt"), "utf8")).toBe(a?.ca);
    expect(ca.ca).toBe(true);
    expect((await readdir(dir)).filter((f) => !f.endsWith(".crt") && !f.endsWith(".key"))).toEqual([]);
  });

  it("by two calls in one process", SLOW, async () => {
    const dir = freshDir();
    const [a, b] = await Promise.all([ensureDevPki(dir, IDENTITIES), ensureDevPki(dir, IDENTITIES)]);
    expect(a.caPem.equals(b.caPem)).toBe(true);
    for (const identity of IDENTITIES) {
      expect(a.material(identity).certPem.equals(b.material(identity).certPem)).toBe(true);
    }
    expect(a.changes.length + b.changes.length).toBe(IDENTITIES.length + 1);
    await expectConsistent(dir, IDENTITIES);
  });
});
