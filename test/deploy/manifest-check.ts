/**
 * Checks of the Kubernetes manifests (deploy/kubernetes) against the Kubernetes API schemas and
 * against the code they deploy: the processes of the service registry (lib/service/registry.ts),
 * their ports and the services they dial, the environment variables the code reads, the NATS
 * permissions. Each check returns a list of
 * problems (empty when there is none), so that a test can show both a clean result and what a
 * drifted manifest gets.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { PLATFORM_REGISTRY, entryPointOf } from "../../lib/service/registry.js";
import { bindHost, envPrefix } from "../../lib/service/config.js";
import { LIVENESS_SERVICE } from "../../lib/service/grpc-server.js";
import { readInternalTlsSettings } from "../../lib/security/tls-config.js";
import { DEFAULT_GATEWAY_PORT, ADMIN_PORT_OFFSET } from "../../gateway/config.js";

/** A Kubernetes object as parsed from YAML, with the file it came from. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  readonly spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly data?: Record<string, string>;
  readonly source: string;
  readonly [field: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// Loading

/**
 * The objects of a kustomize base: every document of every `resources:` file, the ConfigMaps
 * of `configMapGenerator` (files and literals; kustomize's name-hash suffix left out), and the
 * kustomization's namespace set on every namespaced object. Only the fields this base uses are
 * supported; any other kustomization field is reported by `kustomizationProblems`.
 */
export function loadKustomization(dir: string): { objects: K8sObject[]; kustomization: Record<string, unknown> } {
  const kustomization = parseYaml(readFileSync(path.join(dir, "kustomization.yaml"), "utf8")) as Record<string, unknown>;
  const namespace = kustomization.namespace as string | undefined;
  const objects: K8sObject[] = [];
  for (const resource of (kustomization.resources as string[] | undefined) ?? []) {
    objects.push(...parseManifest(readFileSync(path.join(dir, resource), "utf8"), resource));
  }
  for (const generator of (kustomization.configMapGenerator as { name: string; files?: string[]; literals?: string[] }[] | undefined) ?? []) {
    const data: Record<string, string> = {};
    for (const file of generator.files ?? []) data[path.basename(file)] = readFileSync(path.join(dir, file), "utf8");
    for (const literal of generator.literals ?? []) {
      const [key = "", ...value] = literal.split("=");
      data[key] = value.join("=");
    }
    objects.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: generator.name }, data, source: "kustomization.yaml" });
  }
  return {
    kustomization,
    objects: objects.map((object) =>
      object.kind === "Namespace" || namespace === undefined ? object : { ...object, metadata: { ...object.metadata, namespace } },
    ),
  };
}

/** Every document of a YAML stream as an object; a document that is not one is an error. */
export function parseManifest(text: string, source: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((document, index) => {
    if (document.errors.length > 0) throw new Error(`${source}: document ${index + 1}: ${document.errors[0]?.message}`);
    const value = document.toJS() as unknown;
    if (value === null || value === undefined) return [];
    if (typeof value !== "object" || Array.isArray(value)) throw new Error(`${source}: document ${index + 1} is not an object`);
    return [{ ...(value as object), source } as K8sObject];
  });
}

const SUPPORTED_KUSTOMIZATION_FIELDS = new Set(["apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "images"]);

export function kustomizationProblems(kustomization: Record<string, unknown>): string[] {
  return Object.keys(kustomization)
    .filter((field) => !SUPPORTED_KUSTOMIZATION_FIELDS.has(field))
    .map((field) => `kustomization.yaml: ${field} is not understood by this check`);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes schemas

/** The kubernetes-models module of an apiVersion and kind: `apps/v1` + Deployment -> kubernetes-models/apps/v1/Deployment. */
function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/** Problems the Kubernetes OpenAPI schemas (kubernetes-models with @kubernetes-models/validate) find. */
export async function schemaProblems(objects: readonly K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const object of objects) {
    const where = `${object.source}: ${object.kind} ${object.metadata?.name ?? "(no name)"}`;
    let Model: new (data: object) => { validate(): void };
    try {
      const module = (await import(modelModule(object.apiVersion, object.kind))) as Record<string, unknown>;
      Model = module[object.kind] as typeof Model;
      if (typeof Model !== "function") throw new Error("no model");
    } catch {
      problems.push(`${where}: no Kubernetes schema for ${object.apiVersion} ${object.kind}`);
      continue;
    }
    const { source: _source, ...manifest } = object;
    try {
      new Model(manifest).validate();
    } catch (error) {
      problems.push(`${where}: ${(error as Error).message}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The variables the code reads

/**
 * Which environment variables each process's code reads, found in its own source files (those
 * esbuild bundles into its entry point, as scripts/build.mjs does) with the TypeScript parser:
 * a name is read where it is a property or element of something called `env`
 * (`env.NATS_URL`, `process.env["NATS_URL"]`), or a string argument of a call that is also
 * given an `env` (`envInt(env, "GATEWAY_PORT", ...)`). A template such as `${prefix}PORT` reads
 * the variable of every service name prefix (`DELIVERY_PORT`, ...).
 */
export interface EnvReads {
  /** Whether `process` (a service name or "gateway") reads `variable`. */
  reads(process: string, variable: string): boolean;
  /** The patterns found for a process (for messages and tests). */
  patterns(process: string): readonly RegExp[];
}

const VARIABLE = /^[A-Z][A-Z0-9_]*$/;

function isEnvExpression(node: ts.Expression): boolean {
  const text = node.getText();
  return /(^|\.)env$/.test(text) || text === "process.env";
}

/** The regular expression of a string or template that names a variable; undefined otherwise. */
function variablePattern(node: ts.Node, prefixes: string): RegExp | undefined {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
    return VARIABLE.test(node.text) ? new RegExp(`^${node.text}$`) : undefined;
  }
  if (ts.isTemplateExpression(node)) {
    const parts = [node.head.text, ...node.templateSpans.map((span) => span.literal.text)];
    if (!parts.every((part) => /^[A-Z0-9_]*$/.test(part))) return undefined;
    return new RegExp(`^${parts.join(`(?:${prefixes})`)}$`);
  }
  return undefined;
}

export function findEnvReads(file: string, source: string, prefixes: string): RegExp[] {
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: RegExp[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && isEnvExpression(node.expression) && VARIABLE.test(node.name.text)) {
      found.push(new RegExp(`^${node.name.text}$`));
    } else if (ts.isElementAccessExpression(node) && isEnvExpression(node.expression)) {
      const pattern = variablePattern(node.argumentExpression, prefixes);
      if (pattern) found.push(pattern);
    } else if (ts.isCallExpression(node) && node.arguments.some((argument) => isEnvExpression(argument))) {
      for (const argument of node.arguments) {
        const pattern = variablePattern(argument, prefixes);
        if (pattern) found.push(pattern);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

/** The env reads of every process (services/<name>/main.ts and gateway/main.ts), from its bundle's sources. */
export async function codeEnvReads(root: string): Promise<EnvReads> {
  const esbuild = await import("esbuild");
  const entries = PLATFORM_REGISTRY.map(entryPointOf);
  const result = await esbuild.build({
    entryPoints: entries.map((entry) => path.join(root, entry)),
    outdir: path.join(root, ".build-env-scan"),
    outbase: root,
    absWorkingDir: root,
    bundle: true,
    packages: "external",
    format: "esm",
    platform: "node",
    target: "node20",
    metafile: true,
    write: false,
    logLevel: "silent",
  });
  const prefixes = PLATFORM_REGISTRY.map((entry) => envPrefix(entry.name)).join("|");
  const byFile = new Map<string, RegExp[]>();
  const byProcess = new Map<string, RegExp[]>();
  for (const output of Object.values(result.metafile.outputs)) {
    if (!output.entryPoint) continue;
    const entry = path.relative(root, path.resolve(root, output.entryPoint)).split(path.sep).join("/");
    const name = entry === "gateway/main.ts" ? "gateway" : (entry.split("/")[1] ?? entry);
    const patterns: RegExp[] = [];
    for (const input of Object.keys(output.inputs)) {
      if (input.split("/").includes("node_modules") || !/\.ts$/.test(input)) continue;
      let found = byFile.get(input);
      if (found === undefined) {
        found = findEnvReads(input, readFileSync(path.resolve(root, input), "utf8"), prefixes);
        byFile.set(input, found);
      }
      patterns.push(...found);
    }
    byProcess.set(name, patterns);
  }
  return {
    reads: (process, variable) => (byProcess.get(process) ?? []).some((pattern) => pattern.test(variable)),
    patterns: (process) => byProcess.get(process) ?? [],
  };
}

// ---------------------------------------------------------------------------------------------
// Against the code

export interface CodeFacts {
  /** The services' default gRPC ports (lib/service/ports.ts portTable of the registry). */
  readonly ports: Readonly<Record<string, number>>;
  /** The services each process may call (registry.ts dialsOf), by process name. */
  readonly dials: Readonly<Record<string, readonly string[]>>;
  /** The folders under services/ with a main.ts. */
  readonly serviceFolders: readonly string[];
  readonly envReads: EnvReads;
  /** The expected contents of the NATS ConfigMap's auth.conf (scripts/kubernetes-nats-auth.ts). */
  readonly natsAuthConf: string;
  /** The NATS identities (lib/nats/permissions.ts) and the variable of each one's password. */
  readonly natsIdentities: readonly string[];
  readonly natsPasswordVariable: (identity: string) => string;
}

interface ContainerEnv {
  /** Literal values; a variable from a Secret or field has the value undefined. */
  readonly values: Map<string, string | undefined>;
  readonly fromSecret: Map<string, { name: string; key: string }>;
}

function containerEnv(container: any): ContainerEnv {
  const values = new Map<string, string | undefined>();
  const fromSecret = new Map<string, { name: string; key: string }>();
  for (const variable of container?.env ?? []) {
    values.set(variable.name, variable.value === undefined ? undefined : String(variable.value));
    const ref = variable.valueFrom?.secretKeyRef;
    if (ref) fromSecret.set(variable.name, { name: ref.name, key: ref.key });
  }
  return { values, fromSecret };
}

function literalEnv(env: ContainerEnv): Record<string, string | undefined> {
  return Object.fromEntries(env.values);
}

/** The container port a probe or targetPort names (a number, or a port name of the container). */
function resolvePort(container: any, port: unknown): number | undefined {
  if (typeof port === "number") return port;
  return (container?.ports ?? []).find((p: any) => p.name === port)?.containerPort;
}

function portNamed(container: any, name: string): number | undefined {
  return (container?.ports ?? []).find((p: any) => p.name === name)?.containerPort;
}

function intOf(value: string | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return fallback;
  return Number(value);
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/** The DNS names a Service answers to in `namespace`. */
function serviceNames(name: string, namespace: string | undefined): string[] {
  const ns = namespace ?? "default";
  return [name, `${name}.${ns}`, `${name}.${ns}.svc`, `${name}.${ns}.svc.cluster.local`];
}

/** What in the manifests disagrees with the code; empty when nothing does. */
export function codeProblems(objects: readonly K8sObject[], code: CodeFacts): string[] {
  const problems: string[] = [];
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name);
  const deployments = objects.filter((o) => o.kind === "Deployment");
  const processes = [...Object.keys(code.ports), "gateway"];

  const folders = [...code.serviceFolders].sort();
  const table = Object.keys(code.ports).sort();
  if (folders.join() !== table.join()) problems.push(`services/ (${folders.join(", ")}) and the registry (${table.join(", ")}) differ`);

  for (const deployment of deployments) {
    if (!processes.includes(deployment.metadata.name)) problems.push(`Deployment ${deployment.metadata.name}: no service of that name in the code`);
  }

  const natsSet = objects.find((o) => o.kind === "StatefulSet" && o.metadata.name === "nats");
  const natsReplicas: number = natsSet?.spec?.replicas ?? 1;

  /** Where each process's callers find it: the Service's gRPC port (services) by name. */
  const servicePort = (name: string, portName: string): number | undefined =>
    (find("Service", name)?.spec?.ports ?? []).find((p: any) => p.name === portName)?.port;

  for (const name of processes) {
    const deployment = find("Deployment", name);
    const service = find("Service", name);
    if (!deployment) problems.push(`${name}: no Deployment`);
    if (!service) problems.push(`${name}: no Service`);
    if (!deployment) continue;
    const where = `Deployment ${name}`;
    const pod = deployment.spec?.template?.spec;
    const containers: any[] = pod?.containers ?? [];
    const container = containers.find((c) => c.name === name) ?? containers[0];
    if (!container) {
      problems.push(`${where}: no container`);
      continue;
    }
    const args: string[] = container.args ?? [];
    const env = containerEnv(container);
    const chosen = args[0] ?? env.values.get("SERVICE");
    if (chosen !== name) problems.push(`${where}: the container runs "${chosen ?? "(nothing)"}", not ${name} (args[0] or SERVICE)`);

    // Every variable set is one this process's code reads.
    for (const variable of env.values.keys()) {
      if (!code.envReads.reads(name, variable)) problems.push(`${where}: sets ${variable}, which the ${name} code does not read`);
    }
    const literal = literalEnv(env);

    // Listening where the cluster can reach it.
    const host = bindHost(literal, name);
    if (LOOPBACK.has(host)) problems.push(`${where}: binds ${host} (set BIND_HOST or ${envPrefix(name)}HOST to 0.0.0.0): unreachable from other pods`);

    // Requests, so the scheduler can place the pod.
    const requests = container.resources?.requests ?? {};
    if (requests.cpu === undefined || requests.memory === undefined) problems.push(`${where}: no cpu and memory requests`);

    // Certificates from a Secret, through the external-CA variables.
    try {
      const tls = readInternalTlsSettings(literal);
      if (!tls.enabled) problems.push(`${where}: INTERNAL_TLS is off`);
      else if (tls.source !== "files") problems.push(`${where}: no INTERNAL_TLS_CA_FILE/CERT_FILE/KEY_FILE: each pod would make a development CA of its own`);
      else {
        for (const file of [tls.files.caFile, tls.files.certFile, tls.files.keyFile]) {
          const mount = (container.volumeMounts ?? []).find((m: any) => file.startsWith(`${m.mountPath.replace(/\/$/, "")}/`));
          const volume = mount && (pod?.volumes ?? []).find((v: any) => v.name === mount.name);
          if (!volume?.secret?.secretName) problems.push(`${where}: ${file} is not in a volume mounted from a Secret`);
        }
      }
    } catch (error) {
      problems.push(`${where}: ${(error as Error).message}`);
    }

    // NATS: its own user (the permissions are per identity), a password from a Secret, replicas
    // the cluster can hold.
    if (!env.values.has("NATS_URL")) problems.push(`${where}: no NATS_URL`);
    if (literal.NATS_USER !== name) problems.push(`${where}: NATS_USER is ${literal.NATS_USER ?? "unset"}, not its own identity ${name}`);
    if (!env.fromSecret.has("NATS_PASSWORD")) problems.push(`${where}: NATS_PASSWORD does not come from a Secret`);
    const replicas = intOf(literal.NATS_REPLICAS, 1) ?? 1;
    if (replicas > natsReplicas) problems.push(`${where}: NATS_REPLICAS=${replicas} but the NATS StatefulSet has ${natsReplicas} servers`);

    if (name === "gateway") {
      problems.push(...gatewayProblems(objects, container, literal, where));
    } else {
      const prefix = envPrefix(name);
      const grpcPort = intOf(literal[`${prefix}PORT`], code.ports[name]);
      if (portNamed(container, "grpc") !== grpcPort) {
        problems.push(`${where}: container port "grpc" is ${portNamed(container, "grpc") ?? "missing"}, the service listens on ${grpcPort}`);
      }
      const healthPort = intOf(literal[`${prefix}HEALTH_PORT`], undefined);
      if (healthPort === undefined) problems.push(`${where}: no ${prefix}HEALTH_PORT: the gRPC probes have no port without client certificates`);
      else if (portNamed(container, "grpc-health") !== healthPort) {
        problems.push(`${where}: container port "grpc-health" is ${portNamed(container, "grpc-health") ?? "missing"}, ${prefix}HEALTH_PORT is ${healthPort}`);
      }
      const metricsPort = intOf(literal[`${prefix}METRICS_PORT`], undefined);
      if (metricsPort !== undefined && portNamed(container, "metrics") !== metricsPort) {
        problems.push(`${where}: container port "metrics" is ${portNamed(container, "metrics") ?? "missing"}, ${prefix}METRICS_PORT is ${metricsPort}`);
      }
      for (const kind of ["readinessProbe", "livenessProbe"] as const) {
        const probe = container[kind];
        if (!probe?.grpc) {
          problems.push(`${where}: the ${kind} is not a gRPC probe`);
          continue;
        }
        const port = resolvePort(container, probe.grpc.port);
        if (port !== healthPort) problems.push(`${where}: the ${kind} probes port ${port ?? probe.grpc.port}, not the health port ${healthPort ?? "(unset)"}`);
        const wanted = kind === "livenessProbe" ? LIVENESS_SERVICE : "";
        if ((probe.grpc.service ?? "") !== wanted) problems.push(`${where}: the ${kind} checks service "${probe.grpc.service ?? ""}", not "${wanted}"`);
      }
      if (service) {
        const ports: any[] = service.spec?.ports ?? [];
        const grpc = ports.find((p) => p.name === "grpc");
        if (!grpc) problems.push(`Service ${name}: no port named grpc`);
        else {
          const target = resolvePort(container, grpc.targetPort ?? grpc.port);
          if (target !== grpcPort) {
            problems.push(`Service ${name}: port grpc goes to ${String(grpc.targetPort ?? grpc.port)} (container port ${target ?? "none"}), not the service's port ${grpcPort}`);
          }
        }
        const selector = service.spec?.selector ?? {};
        const labels = deployment.spec?.template?.metadata?.labels ?? {};
        if (Object.keys(selector).length === 0 || !Object.entries(selector).every(([k, v]) => labels[k] === v)) {
          problems.push(`Service ${name}: its selector does not select the pods of Deployment ${name}`);
        }
      }
    }
  }

  // Callers' addresses name the Service and its port, and are those of the services it may call.
  for (const deployment of deployments) {
    const dials = code.dials[deployment.metadata.name] ?? [];
    const containers: any[] = deployment.spec?.template?.spec?.containers ?? [];
    const set = new Set(containers.flatMap((c) => [...containerEnv(c).values.keys()]));
    for (const target of dials) {
      if (!set.has(`${envPrefix(target)}ADDRESS`)) problems.push(`Deployment ${deployment.metadata.name}: may call ${target} (the registry) but sets no ${envPrefix(target)}ADDRESS`);
    }
    for (const container of containers) {
      const env = containerEnv(container);
      for (const [variable, value] of env.values) {
        const target = Object.keys(code.ports).find((name) => variable === `${envPrefix(name)}ADDRESS`);
        if (target === undefined || value === undefined) continue;
        if (!dials.includes(target)) {
          problems.push(`Deployment ${deployment.metadata.name}: sets ${variable}, but no caller rule of ${target} names it (the registry)`);
        }
        const targetService = find("Service", target);
        if (!targetService) {
          problems.push(`Deployment ${deployment.metadata.name}: ${variable}=${value}: there is no Service ${target} to dial`);
          continue;
        }
        for (const address of value.split(",").map((a) => a.trim().replace(/^dns:(\/\/[^/]*\/)?/, ""))) {
          const match = /^(.+):(\d+)$/.exec(address);
          const where = `Deployment ${deployment.metadata.name}: ${variable}=${value}`;
          if (!match) {
            problems.push(`${where}: not host:port`);
            continue;
          }
          if (!serviceNames(target, targetService?.metadata.namespace).includes(match[1] as string)) {
            problems.push(`${where}: ${match[1]} is not the Service ${target}`);
          }
          if (Number(match[2]) !== servicePort(target, "grpc")) {
            problems.push(`${where}: port ${match[2]} is not the Service's gRPC port ${servicePort(target, "grpc") ?? "(none)"}`);
          }
        }
      }
    }
  }

  problems.push(...natsProblems(objects, code));
  return problems;
}

function gatewayProblems(objects: readonly K8sObject[], container: any, env: Record<string, string | undefined>, where: string): string[] {
  const problems: string[] = [];
  const httpPort = intOf(env.GATEWAY_PORT, DEFAULT_GATEWAY_PORT) as number;
  const grpcPort = intOf(env.GATEWAY_GRPC_PORT, 8081);
  const adminPort = intOf(env.GATEWAY_ADMIN_PORT, httpPort + ADMIN_PORT_OFFSET);
  const expected: [string, number | undefined][] = [
    ["http", httpPort],
    ["grpc", grpcPort],
    ["admin", adminPort],
  ];
  for (const [name, port] of expected) {
    if (portNamed(container, name) !== port) problems.push(`${where}: container port "${name}" is ${portNamed(container, name) ?? "missing"}, the gateway listens on ${port}`);
  }
  for (const kind of ["readinessProbe", "livenessProbe"] as const) {
    const probe = container[kind];
    const port = resolvePort(container, probe?.httpGet?.port ?? probe?.grpc?.port);
    if (port !== httpPort) problems.push(`${where}: the ${kind} does not probe the HTTP port ${httpPort}`);
  }
  const service = objects.find((o) => o.kind === "Service" && o.metadata.name === "gateway");
  const servicePorts: any[] = service?.spec?.ports ?? [];
  for (const port of servicePorts) {
    const target = resolvePort(container, port.targetPort ?? port.port);
    if (target === undefined || ![httpPort, grpcPort].includes(target)) problems.push(`Service gateway: port ${port.name} goes to no public port of the gateway`);
  }
  const routes = objects.filter((o) => o.kind === "Ingress" || o.kind === "HTTPRoute");
  if (routes.length === 0) problems.push("no Ingress or HTTPRoute for the gateway");
  for (const ingress of routes.filter((o) => o.kind === "Ingress")) {
    for (const rule of ingress.spec?.rules ?? []) {
      for (const p of rule.http?.paths ?? []) {
        const backend = p.backend?.service;
        const port = servicePorts.find((sp) => sp.name === backend?.port?.name || sp.port === backend?.port?.number);
        if (backend?.name !== "gateway" || !port) problems.push(`Ingress ${ingress.metadata.name}: ${p.path} goes to ${backend?.name}:${backend?.port?.name ?? backend?.port?.number}, not a port of the gateway Service`);
      }
    }
  }
  return problems;
}

function natsProblems(objects: readonly K8sObject[], code: CodeFacts): string[] {
  const problems: string[] = [];
  const set = objects.find((o) => o.kind === "StatefulSet" && o.metadata.name === "nats");
  if (!set) return ["no StatefulSet nats"];
  if (set.spec?.replicas !== 3) problems.push(`StatefulSet nats: ${set.spec?.replicas} replicas, not 3`);
  const headless = objects.find((o) => o.kind === "Service" && o.metadata.name === set.spec?.serviceName);
  if (!headless || headless.spec?.clusterIP !== "None") problems.push(`StatefulSet nats: its serviceName ${set.spec?.serviceName} is not a headless Service`);
  const pod = set.spec?.template?.spec;
  const container = (pod?.containers ?? [])[0];
  const configVolume = (pod?.volumes ?? []).find((v: any) => v.configMap);
  const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === configVolume?.configMap?.name);
  if (!config) return [...problems, "StatefulSet nats: its configuration is no ConfigMap of the manifests"];
  const conf = config.data?.["nats.conf"] ?? "";
  if (!/^\s*jetstream\s*\{/m.test(conf)) problems.push("nats.conf: JetStream is not enabled");
  if (!/^\s*cluster\s*\{/m.test(conf)) problems.push("nats.conf: no cluster block");
  const namespace = set.metadata.namespace ?? "default";
  for (let i = 0; i < (set.spec?.replicas ?? 0); i++) {
    const route = `nats://nats-${i}.${set.spec?.serviceName}.${namespace}.svc.cluster.local:6222`;
    if (!conf.includes(route)) problems.push(`nats.conf: no route to ${route}`);
  }
  if (!/^\s*include\s+\.\/auth\.conf\s*$/m.test(conf)) problems.push("nats.conf: does not include ./auth.conf");
  if (config.data?.["auth.conf"] !== code.natsAuthConf) {
    problems.push("auth.conf: differs from lib/nats/permissions.ts (run node --import tsx scripts/kubernetes-nats-auth.ts)");
  }
  const env = containerEnv(container);
  for (const variable of [...conf.matchAll(/\$([A-Z][A-Z0-9_]*)/g)].map((m) => m[1] as string)) {
    if (!env.values.has(variable)) problems.push(`StatefulSet nats: nats.conf uses $${variable}, which the pod does not set`);
  }
  for (const identity of code.natsIdentities) {
    const variable = code.natsPasswordVariable(identity);
    if (!env.fromSecret.has(variable)) problems.push(`StatefulSet nats: ${variable} does not come from a Secret`);
  }
  // The services' password and the server's must be the same Secret key.
  for (const deployment of objects.filter((o) => o.kind === "Deployment")) {
    const c = (deployment.spec?.template?.spec?.containers ?? [])[0];
    const own = containerEnv(c).fromSecret.get("NATS_PASSWORD");
    const user = containerEnv(c).values.get("NATS_USER");
    if (!own || !user) continue;
    const server = env.fromSecret.get(code.natsPasswordVariable(user));
    if (!server || server.name !== own.name || server.key !== own.key) {
      problems.push(`Deployment ${deployment.metadata.name}: its NATS password (${own.name}/${own.key}) is not the one the servers check for ${user}`);
    }
  }
  return problems;
}
