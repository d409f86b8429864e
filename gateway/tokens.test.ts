import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { webcrypto } from "node:crypto";
import { afterAll, describe, expect, it, vi } from "vitest";
import { loadOrCreateDevSecret, readDevSecret } from "./dev-secret.js";
import { SignJWT } from "jose";
import { DEFAULT_MAX_TOKEN_LIFETIME_S, mintToken, TOKEN_ISSUER, verifyToken } from "./tokens.js";

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

  it("imports a secret's key once and still checks every token", async () => {
    const imports = vi.spyOn(webcrypto.subtle, "importKey");
    try {
      const token = await mintToken("acct-demo", "s-once", 60);
      for (let i = 0; i < 3; i++) expect(await verifyToken(token, "s-once")).toBe("acct-demo");
      const forged = `${token.slice(0, token.lastIndexOf("."))}${(await mintToken("acct-demo", "s-forger", 60)).slice(token.lastIndexOf("."))}`;
      await expect(verifyToken(forged, "s-once")).rejects.toThrow();
      await expect(verifyToken(token, "s-other")).rejects.toThrow();
      await expect(verifyToken(await mintToken("acct-demo", "s-once", -10), "s-once")).rejects.toThrow();
      expect(imports.mock.calls.length).toBe(3); // "s-once", "s-forger" and "s-other"
    } finally {
      imports.mockRestore();
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
