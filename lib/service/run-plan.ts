/**
 * `make run`'s processes (scripts/run.ts), derived from the service registry: which folders it
 * starts, on which default ports, and which of them are services of the registry (a gRPC server
 * to wait for, metrics, several instances, an address for callers).
 */
import { gatewayEntry, type Registry } from "./registry.js";

/** A folder that holds a main.ts (services/<name>/main.ts), or the gateway's main.ts. */
export interface ProcessFolder {
  readonly name: string;
  /** Its main.ts. */
  readonly main: string;
}

/** One process of the plan (before instances and environment overrides). */
export interface PlannedProcess {
  readonly name: string;
  readonly main: string;
  /**
   * service: an entry of the registry (a gRPC server on `port`); gateway: the public gateway
   * (HTTP on `port`, gRPC on `grpcPort`); unregistered: a folder with a main.ts and no entry,
   * started as it is, with no port.
   */
  readonly kind: "service" | "gateway" | "unregistered";
  /** The default of `<NAME>_PORT`. */
  readonly port: number | undefined;
  /** The gateway's default GATEWAY_GRPC_PORT. */
  readonly grpcPort?: number;
}

/**
 * The processes to start: every folder holding a main.ts, in the order given (a service of the
 * registry with its default port, any other folder as it is), then the gateway when its main.ts
 * exists (`gatewayMain`) and the registry has it.
 */
export function runPlan(registry: Registry, folders: readonly ProcessFolder[], gatewayMain?: string): PlannedProcess[] {
  const plan: PlannedProcess[] = folders.map(({ name, main }) => {
    const entry = registry.find((e) => e.name === name && e.kind === "service");
    return entry ? { name, main, kind: "service", port: entry.port } : { name, main, kind: "unregistered", port: undefined };
  });
  const gateway = gatewayEntry(registry);
  if (gateway && gatewayMain !== undefined) {
    plan.push({ name: gateway.name, main: gatewayMain, kind: "gateway", port: gateway.port, grpcPort: gateway.grpcPort });
  }
  return plan;
}
