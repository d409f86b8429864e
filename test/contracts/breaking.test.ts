// Proves that `make breaking` guards the released contracts: a changed field type in a released
// package fails it, while a new v2 package beside v1 passes. Each case runs on a copy of the
// contracts workspace in a temp dir, so the real tree is never touched.
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const copies: string[] = [];

/** A copy of the contracts workspace (sources, vendored imports, buf.yaml, baseline). */
function copyWorkspace(): string {
  const dir = mkdtempSync(join(tmpdir(), "contracts-"));
  copies.push(dir);
  for (const entry of ["proto", "proto-vendor", "contracts", "buf.yaml"]) {
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  }
  return dir;
}

/** Runs `make breaking` against a workspace; resolves with exit code and output. */
async function makeBreaking(dir: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run("make", ["-s", "breaking", `CONTRACTS_DIR=${dir}`], { cwd: root });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

function edit(file: string, from: string, to: string): void {
  const text = readFileSync(file, "utf8");
  expect(text).toContain(from);
  writeFileSync(file, text.replace(from, to));
}

afterEach(() => {
  for (const dir of copies.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("make breaking", () => {
  it("passes on the contracts as committed", async () => {
    const result = await makeBreaking(copyWorkspace());
    expect(result.output).toContain("no breaking change");
    expect(result.code).toBe(0);
  });

  it("fails when a released field changes type", async () => {
    const dir = copyWorkspace();
    edit(join(dir, "proto/dronedelivery/drone/v1/drone.proto"), "double max_payload_kg = 6;", "string max_payload_kg = 6;");
    const result = await makeBreaking(dir);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/max_payload_kg.*changed type from "double" to "string"/);
  });

  it("fails when a released RPC or event field is removed", async () => {
    const dir = copyWorkspace();
    edit(
      join(dir, "proto/dronedelivery/drone/v1/drone_events.proto"),
      "  // Remaining battery charge, 0 to 100.\n  double battery_percent = 5;\n",
      "",
    );
    const result = await makeBreaking(dir);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/battery_percent/);
  });

  it("passes when the change goes into a new v2 package beside v1", async () => {
    const dir = copyWorkspace();
    const v2 = join(dir, "proto/dronedelivery/package/v2");
    mkdirSync(v2, { recursive: true });
    writeFileSync(
      join(v2, "package.proto"),
      [
        'syntax = "proto3";',
        "",
        "// Version 2 of the Package context, served beside v1.",
        "package dronedelivery.package.v2;",
        "",
        "// A parcel whose weight is given in grams.",
        "message Package {",
        "  // Identifier of the parcel.",
        "  string package_id = 1;",
        "  // The parcel's weight in grams.",
        "  int64 weight_grams = 2;",
        "}",
        "",
      ].join("\n"),
    );
    const result = await makeBreaking(dir);
    expect(result.output).toContain("no breaking change");
    expect(result.code).toBe(0);
  });
});
