// The Kubernetes manifests (deploy/kubernetes, a kustomize base), checked here because no cluster
// is reachable: the parts that follow from the service registry are what
// scripts/kubernetes-manifests.ts writes from it; every object against the Kubernetes API schemas
// (kubernetes-models), and against the code it deploys (test/deploy/manifest-check.ts): a
// Deployment and a Service per process of the registry, ports, probes, certificates, NATS users,
// the addresses of the services each may call, and every variable set read by the code. The last
// cases feed drifted manifests to the same checks and assert what they report.

import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveNatsServerBin } from "../../lib/devtools/nats-server.js";
import { natsIdentitiesOf } from "../../lib/nats/permissions.js";
import { portTable } from "../../lib/service/ports.js";
import { dialsOf, PLATFORM_REGISTRY, serviceEntries, type Registry, type ServiceEntry } from "../../lib/service/registry.js";
import { kubernetesManifests, staleManifests } from "../../scripts/kubernetes-manifests.js";
import { kubernetesNatsAuth, natsPasswordVariable } from "../../scripts/kubernetes-nats-auth.js";
import {
  codeEnvReads,
  codeProblems,
  findEnvReads,
  kustomizationProblems,
  loadKustomization,
  parseManifest,
  schemaProblems,
  type CodeFacts,
  type K8sObject,
} from "./manifest-check.js";

const root = path.resolve(import.meta.dirname, "../..");
const base = path.join(root, "deploy/kubernetes");
const run = promisify(execFile);
const registry = PLATFORM_REGISTRY;
const serviceNames = serviceEntries(registry).map((e) => e.name);

let objects: K8sObject[];
let kustomization: Record<string, unknown>;
let code: CodeFacts;

beforeAll(async () => {
  ({ objects, kustomization } = loadKustomization(base));
  code = {
    ports: portTable(registry),
    dials: Object.fromEntries(registry.map((e) => [e.name, dialsOf(registry, e.name)])),
    serviceFolders: readdirSync(path.join(root, "services")).filter((name) => existsSync(path.join(root, "services", name, "main.ts"))),
    envReads: await codeEnvReads(root),
    natsAuthConf: kubernetesNatsAuth(registry),
    natsIdentities: natsIdentitiesOf(registry),
    natsPasswordVariable,
  };
}, 120_000);

/** A deep copy of the manifests with `change` applied to the object `kind`/`name`. */
function drifted(kind: string, name: string, change: (object: any) => void): K8sObject[] {
  const copy = structuredClone(objects) as any[];
  const target = copy.find((o) => o.kind === kind && o.metadata.name === name);
  change(target);
  return copy;
}

function containerOf(deployment: any): any {
  return deployment.spec.template.spec.containers[0];
}

describe("the Kubernetes manifests", () => {
  it("are what scripts/kubernetes-manifests.ts writes from the registry", () => {
    expect(staleManifests(registry), "run make manifests").toEqual([]);
  });

  it("hold what the base should: every object kind, in one namespace", () => {
    expect(kustomizationProblems(kustomization)).toEqual([]);
    const kinds = (kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.metadata.name).sort();
    expect(kinds("Deployment")).toEqual(registry.map((e) => e.name).sort());
    expect(kinds("Service")).toEqual([...registry.map((e) => e.name), "nats", "nats-cluster"].sort());
    expect(kinds("StatefulSet")).toEqual(["nats"]);
    expect(kinds("ConfigMap")).toEqual(["nats-config"]);
    expect(kinds("Ingress")).toEqual(["gateway"]);
    expect(new Set(objects.filter((o) => o.kind !== "Namespace").map((o) => o.metadata.namespace))).toEqual(new Set(["dronedelivery"]));
  });

  it("are valid Kubernetes objects (the API's OpenAPI schemas)", async () => {
    expect(await schemaProblems(objects)).toEqual([]);
  }, 60_000);

  it("agree with the code: services, ports, probes, certificates, NATS users and the variables the code reads", () => {
    expect(codeProblems(objects, code)).toEqual([]);
  });

  it("give nats-server a configuration it accepts (nats-server -t, with the pod's variables)", async () => {
    const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "nats-config");
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(path.join(tmpdir(), "nats-conf-"));
    try {
      for (const [file, text] of Object.entries(config?.data ?? {})) await writeFile(path.join(dir, file), text);
      const nats = objects.find((o) => o.kind === "StatefulSet" && o.metadata.name === "nats");
      const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
      for (const variable of containerOf(nats).env) env[variable.name] = `value-of-${variable.name.toLowerCase()}`;
      const { stdout, stderr } = await run(resolveNatsServerBin(), ["-c", path.join(dir, "nats.conf"), "-t"], { env, cwd: dir });
      expect(`${stdout}${stderr}`).toMatch(/configuration file .* is valid/);
      // Without the passwords it is refused: the variables are really read.
      await expect(run(resolveNatsServerBin(), ["-c", path.join(dir, "nats.conf"), "-t"], { env: { PATH: env.PATH ?? "" }, cwd: dir })).rejects.toThrow(
        /can not be found/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("find the variables each process reads, and only in reading positions", () => {
    const source = [
      'const a = envInt(env, "GATEWAY_PORT", 8080);',
      "const b = process.env.NATS_URL;",
      'const c = env["LOG_LEVEL"];',
      "const d = env[`${prefix}METRICS_PORT`];",
      'const notRead = "DELIVERY_REQUESTS";',
      'log.info("SERVING");',
    ].join("\n");
    const patterns = findEnvReads("x.ts", source, "DELIVERY_|ACCOUNT_").map(String);
    expect(patterns).toEqual(["/^GATEWAY_PORT$/", "/^NATS_URL$/", "/^LOG_LEVEL$/", "/^(?:DELIVERY_|ACCOUNT_)METRICS_PORT$/"]);
    expect(code.envReads.reads("delivery", "DELIVERY_HEALTH_PORT")).toBe(true);
    expect(code.envReads.reads("delivery", "INTERNAL_TLS_CERT_FILE")).toBe(true);
    expect(code.envReads.reads("gateway", "GATEWAY_JWT_SECRET")).toBe(true);
    expect(code.envReads.reads("delivery", "GATEWAY_JWT_SECRET")).toBe(false);
    expect(code.envReads.reads("delivery", "DELIVERY_REQUESTS")).toBe(false);
  });
});

describe("manifests that drift from the code fail the checks", () => {
  it("a dialled service without its address, and an address of a service not dialled", () => {
    const wrong = drifted("Deployment", "delivery", (d) => {
      const env = containerOf(d).env;
      env.find((v: any) => v.name === "DRONE_ADDRESS").name = "ACCOUNT_ADDRESS";
    });
    expect(codeProblems(wrong, code)).toEqual([
      "Deployment delivery: may call drone (the registry) but sets no DRONE_ADDRESS",
      "Deployment delivery: sets ACCOUNT_ADDRESS, but no caller rule of account names it (the registry)",
      "Deployment delivery: ACCOUNT_ADDRESS=drone.dronedelivery.svc.cluster.local:7053: drone.dronedelivery.svc.cluster.local is not the Service account",
      "Deployment delivery: ACCOUNT_ADDRESS=drone.dronedelivery.svc.cluster.local:7053: port 7053 is not the Service's gRPC port 7051",
    ]);
  });

  it("a wrong port", () => {
    const wrong = drifted("Deployment", "delivery", (d) => {
      containerOf(d).ports.find((p: any) => p.name === "grpc").containerPort = 7099;
    });
    expect(codeProblems(wrong, code)).toEqual([
      'Deployment delivery: container port "grpc" is 7099, the service listens on 7055',
      "Service delivery: port grpc goes to grpc (container port 7099), not the service's port 7055",
    ]);
  });

  it("a caller dialling a port the Service does not have", () => {
    const wrong = drifted("Deployment", "gateway", (d) => {
      containerOf(d).env.find((v: any) => v.name === "DELIVERY_ADDRESS").value = "delivery.dronedelivery.svc.cluster.local:50055";
    });
    expect(codeProblems(wrong, code)).toEqual([
      "Deployment gateway: DELIVERY_ADDRESS=delivery.dronedelivery.svc.cluster.local:50055: port 50055 is not the Service's gRPC port 7055",
    ]);
  });

  it("a variable the code does not read", () => {
    const wrong = drifted("Deployment", "scheduler", (d) => {
      containerOf(d).env.push({ name: "SCHEDULER_MAX_CONCURRENCY", value: "8" }, { name: "GATEWAY_JWT_SECRET", value: "x" });
    });
    expect(codeProblems(wrong, code)).toEqual([
      "Deployment scheduler: sets SCHEDULER_MAX_CONCURRENCY, which the scheduler code does not read",
      "Deployment scheduler: sets GATEWAY_JWT_SECRET, which the scheduler code does not read",
    ]);
  });

  it("probes on the mutual-TLS port, and a liveness probe that follows readiness", () => {
    const wrong = drifted("Deployment", "drone", (d) => {
      containerOf(d).readinessProbe.grpc.port = 7053;
      delete containerOf(d).livenessProbe.grpc.service;
    });
    expect(codeProblems(wrong, code)).toEqual([
      "Deployment drone: the readinessProbe probes port 7053, not the health port 9053",
      'Deployment drone: the livenessProbe checks service "", not "liveness"',
    ]);
  });

  it("a missing Service, a loopback bind address and certificates not from a Secret", () => {
    const withoutService = (structuredClone(objects) as any[]).filter((o) => !(o.kind === "Service" && o.metadata.name === "account"));
    const wrong = (() => {
      const copy = withoutService;
      const d = copy.find((o) => o.kind === "Deployment" && o.metadata.name === "account");
      containerOf(d).env = containerOf(d).env.filter((v: any) => v.name !== "BIND_HOST");
      d.spec.template.spec.volumes.find((v: any) => v.name === "tls").secret = undefined;
      d.spec.template.spec.volumes.find((v: any) => v.name === "tls").emptyDir = {};
      return copy;
    })();
    expect(codeProblems(wrong, code)).toEqual([
      "account: no Service",
      "Deployment account: binds 127.0.0.1 (set BIND_HOST or ACCOUNT_HOST to 0.0.0.0): unreachable from other pods",
      "Deployment account: /etc/dronedelivery/tls/ca.crt is not in a volume mounted from a Secret",
      "Deployment account: /etc/dronedelivery/tls/tls.crt is not in a volume mounted from a Secret",
      "Deployment account: /etc/dronedelivery/tls/tls.key is not in a volume mounted from a Secret",
      "Deployment scheduler: ACCOUNT_ADDRESS=account.dronedelivery.svc.cluster.local:7051: there is no Service account to dial",
    ]);
  });

  it("NATS permissions changed in the code but not in auth.conf, and a NATS user that is not the service's own", () => {
    const wrong = drifted("Deployment", "ingestion", (d) => {
      containerOf(d).env.find((v: any) => v.name === "NATS_USER").value = "admin";
    });
    const facts = { ...code, natsAuthConf: code.natsAuthConf.replace('"_INBOX.ingestion.>"', '"_INBOX.ingestion.>", "ingestion.extra"') };
    expect(codeProblems(wrong, facts)).toEqual([
      "Deployment ingestion: NATS_USER is admin, not its own identity ingestion",
      "auth.conf: differs from lib/nats/permissions.ts (run node --import tsx scripts/kubernetes-nats-auth.ts)",
      "Deployment ingestion: its NATS password (nats-users/ingestion) is not the one the servers check for admin",
    ]);
  });

  it("an object the Kubernetes schema refuses", async () => {
    const [bad] = parseManifest(
      [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata: { name: x }",
        "spec:",
        "  selector: { matchLabels: { a: b } }",
        "  template:",
        "    metadata: { labels: { a: b } }",
        "    spec:",
        "      containers:",
        '        - { name: x, image: i, ports: [{ containerPort: "7055" }], readinessProbe: { grpc: { service: "" } } }',
      ].join("\n"),
      "bad.yaml",
    );
    const problems = await schemaProblems([bad as K8sObject, { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" }, source: "w.yaml" }]);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^bad\.yaml: Deployment x: .*containerPort must be integer/);
    expect(problems[0]).toMatch(/readinessProbe\/grpc must have required property port/);
    expect(problems[1]).toBe("w.yaml: Widget w: no Kubernetes schema for example.com/v1 Widget");
  });
});

describe("a service added to the registry", () => {
  const locker: ServiceEntry = {
    kind: "service",
    name: "locker",
    port: 7070,
    serves: [{ service: "dronedelivery.locker.v1.LockerService", callers: { OpenLocker: ["scheduler"] } }],
    nats: { writes: [], buckets: ["lockers"], consumes: [], reads: [], listens: [] },
    replicas: 2,
  };
  const withLocker: Registry = [...serviceEntries(registry), locker, ...registry.filter((e) => e.kind === "gateway")];

  it("makes the committed manifests stale until the script is run", () => {
    expect(staleManifests(withLocker)).toEqual([
      "services/scheduler.yaml differs",
      "services/locker.yaml is missing",
      "kustomization.yaml differs",
      "nats/nats.yaml differs",
      "nats/auth.conf differs",
    ]);
  });

  it("gets a Deployment and a Service that pass the same checks", async () => {
    const read = (file: string) => readFileSync(path.join(base, file), "utf8");
    const files = kubernetesManifests(withLocker, read);
    expect(files.get("kustomization.yaml")).toContain("  - services/supervisor.yaml\n  - services/locker.yaml\n");
    expect(files.get("nats/nats.yaml")).toContain("- name: NATS_PASSWORD_LOCKER");
    const lockerObjects = parseManifest(files.get("services/locker.yaml") ?? "", "services/locker.yaml");
    expect(lockerObjects.map((o) => `${o.kind} ${o.metadata.name}`)).toEqual(["Deployment locker", "Service locker"]);
    expect(await schemaProblems(lockerObjects)).toEqual([]);
    expect(containerOf(lockerObjects[0]).ports.map((p: any) => p.containerPort)).toEqual([7070, 9070, 8070]);
    // Its caller, the Scheduler, is told where it is.
    const [scheduler] = parseManifest(files.get("services/scheduler.yaml") ?? "", "services/scheduler.yaml");
    expect(containerOf(scheduler).env.find((v: any) => v.name === "LOCKER_ADDRESS")?.value).toBe("locker.dronedelivery.svc.cluster.local:7070");
  });
});
