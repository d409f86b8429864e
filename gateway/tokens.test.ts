import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadOrCreateDevSecret, readDevSecret } from "./dev-secret.js";
import { mintToken, verifyToken } from "./tokens.js";

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

  it("generates the development secret once and keeps it", () => {
    const file = path.join(dir, "nested", "gateway-dev-secret");
    expect(readDevSecret(file)).toBeUndefined();
    const secret = loadOrCreateDevSecret(file);
    expect(secret.length).toBeGreaterThan(30);
    expect(loadOrCreateDevSecret(file)).toBe(secret);
    expect(readFileSync(file, "utf8").trim()).toBe(secret);
  });
});
