/**
 * `/readyz`: the gateway is ready when every internal service it calls reports SERVING on
 * `grpc.health.v1`. Each probe is bounded, so a hung service answers "not ready", not a hang.
 */
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import type { CommsLayer } from "../lib/comms/layer.js";

export interface ReadinessReport {
  readonly ready: boolean;
  /** Each dependency's serving status (`SERVING`, `NOT_SERVING`, `UNREACHABLE`, ...). */
  readonly services: Record<string, string>;
}

export interface ReadinessProbe {
  check(): Promise<ReadinessReport>;
  close(): void;
}

export const READINESS_TIMEOUT_MS = 1000;

/** Probes of the dependencies, by name and address; they see each one as it is (no retries). */
export function createReadinessProbe(comms: CommsLayer, dependencies: Record<"ingestion" | "delivery", string>): ReadinessProbe {
  const clients = Object.entries(dependencies).map(([name, address]) => ({
    name,
    client: comms.client(Health, name as keyof typeof dependencies, { address, observe: false, resilience: false }),
  }));
  return {
    async check() {
      const statuses = await Promise.all(
        clients.map(async ({ name, client }) => {
          try {
            const answer = await client.check({ service: "" }, { timeoutMs: READINESS_TIMEOUT_MS });
            return [name, HealthCheckResponse_ServingStatus[answer.status] ?? "UNKNOWN"] as const;
          } catch {
            return [name, "UNREACHABLE"] as const;
          }
        }),
      );
      return { ready: statuses.every(([, status]) => status === "SERVING"), services: Object.fromEntries(statuses) };
    },
    close() {
      for (const { client } of clients) client.close();
    },
  };
}
