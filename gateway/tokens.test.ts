import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createHmac, webcrypto } from "node:crypto";
import { afterAll, describe, expect, it, vi } from "vitest";
import { loadOrCreateDevSecret, readDevSecret } from "./dev-secret.js";
import { SignJWT } from "jose";
import { DEFAULT_MAX_TOKEN_LIFETIME_S, mintToken, TOKEN_ISSUER, verifyCallerNow, verifyToken, verifyTokenNow } from "./tokens.js";

/** A token signed with `secret` carrying exactly the given time claims. */
function signed(secret: string, claims: { iat?: number; exp?: number }): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject("acct-demo").setIssuer(TOKEN_ISSUER);
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
  if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
  return jwt.sign(new TextEncoder().encode(secret));
}

const dir = mkdtempSync(path.join(tmpdir(), "gateway-secret-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tokens", () => {
  it("round-trips the account and refuses forged or expired tokens", async () => {
    const token = await mintToken("acct-demo", "s1", 60);
    expect(await verifyToken(token, "s1")).toBe("acct-demo");
    await expect(verifyToken(token, "s2")).rejects.toThrow();
    await expect(verifyToken(await mintToken("acct-demo", "s1", -10), "s1")).rejects.toThrow();
    await expect(mintToken(" ", "s1")).rejects.toThrow();
  });

  it("refuses a token without exp or living longer than the maximum lifetime", async () => {
    const now = Math.floor(Date.now() / 1000);
    await expect(verifyToken(await signed("s1", { iat: now }), "s1")).rejects.toThrow();
    await expect(verifyToken(await signed("s1", {}), "s1")).rejects.toThrow();
    await expect(verifyToken(await signed("s1", { iat: now, exp: now + DEFAULT_MAX_TOKEN_LIFETIME_S + 60 }), "s1")).rejects.toThrow(/longer/);
    // Without iat, the lifetime counts from now.
    await expect(verifyToken(await signed("s1", { exp: now + DEFAULT_MAX_TOKEN_LIFETIME_S + 60 }), "s1")).rejects.toThrow(/longer/);
    expect(await verifyToken(await signed("s1", { exp: now + 600 }), "s1")).toBe("acct-demo");
    expect(await verifyToken(await signed("s1", { iat: now, exp: now + DEFAULT_MAX_TOKEN_LIFETIME_S }), "s1")).toBe("acct-demo");
    // A configured maximum; the default token of mint-token (1 h) stays valid under the default.
    await expect(verifyToken(await mintToken("acct-demo", "s1", 7200), "s1", 3600)).rejects.toThrow(/longer/);
    expect(await verifyToken(await mintToken("acct-demo", "s1"), "s1")).toBe("acct-demo");
  });

  it("checks every token without a WebCrypto job, and still refuses forged ones", async () => {
    const token = await mintToken("acct-demo", "s-once", 60);
    const forged = `${token.slice(0, token.lastIndexOf("."))}${(await mintToken("acct-demo", "s-forger", 60)).slice(token.lastIndexOf("."))}`;
    const expired = await mintToken("acct-demo", "s-once", -10);
    const imports = vi.spyOn(webcrypto.subtle, "importKey");
    const verifies = vi.spyOn(webcrypto.subtle, "verify");
    try {
      for (let i = 0; i < 3; i++) expect(verifyTokenNow(token, "s-once")).toBe("acct-demo");
      expect(() => verifyTokenNow(forged, "s-once")).toThrow(/signature/);
      expect(() => verifyTokenNow(token, "s-other")).toThrow(/signature/);
      expect(() => verifyTokenNow(expired, "s-once")).toThrow(/expired/);
      expect(imports.mock.calls.length + verifies.mock.calls.length).toBe(0);
    } finally {
      imports.mockRestore();
      verifies.mockRestore();
    }
  });

  it("refuses tokens of another algorithm, issuer or with extensions, and not yet valid ones", async () => {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const claims = { sub: "acct-demo", iss: TOKEN_ISSUER, iat: now, exp: now + 600 };
    const hs256 = (header: object, payload: object, secret = "s1") => {
      const input = `${b64(header)}.${b64(payload)}`;
      return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
    };
    expect(verifyTokenNow(hs256({ alg: "HS256", typ: "JWT" }, claims), "s1")).toBe("acct-demo");
    expect(() => verifyTokenNow(`${b64({ alg: "none" })}.${b64(claims)}.`, "s1")).toThrow();
    expect(() => verifyTokenNow(hs256({ alg: "none" }, claims), "s1")).toThrow(/HS256/);
    expect(() => verifyTokenNow(hs256({ alg: "HS384" }, claims), "s1")).toThrow(/HS256/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256", crit: ["exp"] }, claims), "s1")).toThrow(/extension/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256" }, { ...claims, iss: "someone-else" }), "s1")).toThrow(/issued/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256" }, { ...claims, nbf: now + 60 }), "s1")).toThrow(/not valid yet/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256" }, { ...claims, exp: String(now + 600) }), "s1")).toThrow(/expiry/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256" }, { ...claims, iat: "x" }), "s1")).toThrow(/iat/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256" }, { ...claims, sub: "" }), "s1")).toThrow(/account/);
    expect(() => verifyTokenNow(hs256({ alg: "HS256" }, [claims]), "s1")).toThrow(/object/);
    expect(() => verifyTokenNow(`${hs256({ alg: "HS256" }, claims)}.extra`, "s1")).toThrow(/three parts/);
    expect(() => verifyTokenNow(`${hs256({ alg: "HS256" }, claims)}!`, "s1")).toThrow(/base64url/);
  });

  it("carries roles: known ones kept, unknown ones ignored, a malformed claim refused", async () => {
    expect(verifyCallerNow(await mintToken("acct-demo", "s-roles"), "s-roles")).toEqual({ account: "acct-demo", roles: [] });
    const operator = await mintToken("acct-ops", "s-roles", 600, ["operator"]);
    expect(verifyCallerNow(operator, "s-roles")).toEqual({ account: "acct-ops", roles: ["operator"] });
    expect(verifyTokenNow(operator, "s-roles")).toBe("acct-ops");
    const mixed = await mintToken("acct-ops", "s-roles", 600, ["auditor", "operator", "operator"]);
    expect(verifyCallerNow(mixed, "s-roles").roles).toEqual(["operator"]);
    expect(verifyCallerNow(await mintToken("acct-ops", "s-roles", 600, ["auditor"]), "s-roles").roles).toEqual([]);

    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: "acct-ops", iss: TOKEN_ISSUER, iat: now, exp: now + 600 };
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const hs256 = (payload: object) => {
      const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(payload)}`;
      return `${input}.${createHmac("sha256", "s-roles").update(input).digest("base64url")}`;
    };
    expect(verifyCallerNow(hs256({ ...claims, roles: [] }), "s-roles").roles).toEqual([]);
    for (const roles of ["operator", { operator: true }, ["operator", 1], null, 7]) {
      expect(() => verifyCallerNow(hs256({ ...claims, roles }), "s-roles")).toThrow(/roles/);
    }
  });

  it("generates the development secret once and keeps it", () => {
    const file = path.join(dir, "nested", "gateway-dev-secret");
    expect(readDevSecret(file)).toBeUndefined();
    const secret = loadOrCreateDevSecret(file);
    expect(secret.length).toBeGreaterThan(30);
    expect(loadOrCreateDevSecret(file)).toBe(secret);
    expect(readFileSync(file, "utf8").trim()).toBe(secret);
  });
});
