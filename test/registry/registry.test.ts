// The service registry (lib/service/registry.ts) and the service folders agree: every folder of
// services/ is a service of the registry and every service of the registry is a folder with its
// main.ts, module.ts and README.md, whose module is the entry's; and the registry is consistent
// (names, ports, one server per contract, callers that exist), and a process may call what the
// caller rules say.

import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { dialsOf, entryPointOf, PLATFORM_REGISTRY, registryProblems, serviceEntries, type Registry, type ServiceEntry } from "../../lib/service/registry.js";
import type { ServiceModule } from "../../lib/service/service-host.js";

const root = path.resolve(import.meta.dirname, "../..");

/** The folders a service is made of, and what each must hold. */
const SERVICE_FILES = ["main.ts", "module.ts", "README.md"];

/**
 * What disagrees between `registry` and the folders under `servicesDir` (every directory there
 * is a service's): a folder with no entry, an entry with no folder or a file missing, a gateway
 * entry with no gateway/main.ts.
 */
function folderProblems(registry: Registry, repoRoot: string, servicesDir = path.join(repoRoot, "services")): string[] {
  const problems: string[] = [];
  const folders = readdirSync(servicesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
  const services = serviceEntries(registry).map((e) => e.name);
  for (const folder of folders) {
    if (!services.includes(folder)) problems.push(`services/${folder} has no entry in the registry (lib/service/registry.ts)`);
  }
  for (const name of services) {
    if (!folders.includes(name)) {
      problems.push(`the registry's ${name} has no folder services/${name}/`);
      continue;
    }
    for (const file of SERVICE_FILES) {
      if (!existsSync(path.join(servicesDir, name, file))) problems.push(`services/${name}/${file} is missing`);
    }
  }
  for (const entry of registry.filter((e) => e.kind === "gateway")) {
    if (!existsSync(path.join(repoRoot, entryPointOf(entry)))) problems.push(`the registry's ${entry.name} has no ${entryPointOf(entry)}`);
  }
  return problems;
}

const locker: ServiceEntry = {
  kind: "service",
  name: "locker",
  port: 7070,
  serves: [],
  nats: { writes: [], buckets: ["lockers"], consumes: [], reads: [], listens: [] },
  replicas: 2,
};

describe("the service registry and services/", () => {
  it("name the same services, each folder with its main.ts, module.ts and README.md", () => {
    expect(folderProblems(PLATFORM_REGISTRY, root)).toEqual([]);
  });

  it("fail the check for an entry without a folder, and for a folder without an entry", () => {
    expect(folderProblems([...PLATFORM_REGISTRY, locker], root)).toEqual(["the registry's locker has no folder services/locker/"]);
    const withoutAccount = PLATFORM_REGISTRY.filter((e) => e.name !== "account");
    expect(folderProblems(withoutAccount, root)).toEqual(["services/account has no entry in the registry (lib/service/registry.ts)"]);
  });

  it("give each service's module its entry's name, port and served contracts", async () => {
    for (const entry of serviceEntries(PLATFORM_REGISTRY)) {
      const exports = (await import(pathToFileURL(path.join(root, "services", entry.name, "module.ts")).href)) as Record<string, unknown>;
      const module = Object.values(exports).find((v): v is ServiceModule => typeof v === "object" && v !== null && "create" in v && "name" in v);
      expect(module?.name, entry.name).toBe(entry.name);
      expect(module?.defaultPort, entry.name).toBe(entry.port);
      expect(module?.services.map((s) => s.typeName), entry.name).toEqual(entry.serves.map((s) => (typeof s.service === "string" ? s.service : s.service.typeName)));
    }
  }, 60_000);
});

describe("dialsOf", () => {
  it("gives each process the services whose caller rules name it", () => {
    expect(dialsOf(PLATFORM_REGISTRY, "scheduler")).toEqual(["account", "package", "drone", "thirdparty", "delivery"]);
    expect(dialsOf(PLATFORM_REGISTRY, "supervisor")).toEqual(["package", "drone", "thirdparty", "delivery"]);
    expect(dialsOf(PLATFORM_REGISTRY, "delivery")).toEqual(["drone"]);
    expect(dialsOf(PLATFORM_REGISTRY, "gateway")).toEqual(["drone", "delivery", "ingestion"]);
    expect(dialsOf(PLATFORM_REGISTRY, "account")).toEqual([]);
  });
});

describe("registryProblems", () => {
  it("finds nothing wrong with the platform's registry", () => {
    expect(registryProblems(PLATFORM_REGISTRY)).toEqual([]);
  });

  it("reports a bad name, a taken port, a contract served twice and an unknown caller", () => {
    const account = PLATFORM_REGISTRY.find((e) => e.name === "account")!;
    const broken: Registry = [
      ...PLATFORM_REGISTRY,
      { ...locker, port: 7051 },
      { ...locker, name: "Locker-2", port: 7082, serves: account.serves },
      { ...locker, name: "locker-3", port: 7090, serves: [{ service: "dronedelivery.locker.v1.LockerService", callers: { Open: ["ghost", "gateway"] } }] },
    ];
    expect(registryProblems(broken)).toEqual([
      "locker: ports 7051, 8051, 9051 are account's already",
      'Locker-2: not a name for a process (lower-case letters, digits, dashes; not "ca" or "admin")',
      "Locker-2: dronedelivery.account.v1.AccountService is served by account already",
      "locker-3: dronedelivery.locker.v1.LockerService/Open names ghost, which is no process of the registry",
    ]);
  });
});
