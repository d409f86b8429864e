/**
 * Asks a running server for its health over the standard `grpc.health.v1` protocol, through the
 * generated client: what `make run`, tests and operators use to tell whether a service is ready.
 */
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { operatorChannel } from "../comms/operator.js";
import { createClient, errorMessage } from "../grpc/index.js";
import type { Env } from "./config.js";

/**
 * The health status of a service ("" = the whole server), e.g. "SERVING"; throws when unreachable.
 * Asks as the operator identity (mutual TLS unless INTERNAL_TLS=off in `env`).
 */
export async function healthStatus(address: string, service = "", timeoutMs = 2_000, env: Env = process.env): Promise<string> {
  const channel = await operatorChannel(env);
  const client = createClient(Health, { address, ...channel, observe: false });
  try {
    const response = await client.check({ service }, { timeoutMs });
    return HealthCheckResponse_ServingStatus[response.status] ?? String(response.status);
  } finally {
    client.close();
  }
}

/**
 * Polls health until it reports `want` (default SERVING). Resolves with the last answer seen (or
 * the last error's message) when `timeoutMs` passes first, so callers can report it.
 */
export async function waitForHealth(
  address: string,
  {
    want = "SERVING",
    timeoutMs = 10_000,
    intervalMs = 100,
    env = process.env,
  }: { want?: string; timeoutMs?: number; intervalMs?: number; env?: Env } = {},
): Promise<{ ok: boolean; last: string }> {
  const until = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    last = await healthStatus(address, "", 2_000, env).catch((e: unknown) => errorMessage(e));
    if (last === want) return { ok: true, last };
    if (Date.now() >= until) return { ok: false, last };
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
