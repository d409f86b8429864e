// What a customer sees of an accepted delivery through the public door: a stage from the moment
// of the 202 on every read (REST v1 and v2, the status, the live stream), and a failed delivery's
// code and reason; a reschedule that cannot be carried out is refused.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startGatewayStack, type GatewayStack } from "./test-stack.js";
import { restCall, type Json, type RestCallOptions } from "./test-calls.js";
import { mintToken } from "./tokens.js";

const SECRET = "outcomes-test-secret";
const DEADLINE = new Date(Date.now() + 86_400_000).toISOString();

let stack: GatewayStack;
let suspendedToken: string;

const call = (method: string, path: string, options?: RestCallOptions) => restCall(stack.gateway.url, method, path, options);

function scheduleBody(packageId: string): Json {
  return {
    pickup: { latitude: 47.61, longitude: -122.33 },
    dropoff: { latitude: 47.63, longitude: -122.36 },
    deadline: DEADLINE,
    confirmationRequired: "CONFIRMATION_TYPE_NONE",
    packageInfo: { packageId, size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 },
  };
}

/** The first `data:` line of the delivery's SSE stream. */
async function firstStreamEvent(deliveryId: string, token: string): Promise<Json> {
  const controller = new AbortController();
  try {
    const res = await fetch(`${stack.gateway.url}/v1/deliveries/${deliveryId}/events`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before an event: ${text}`);
      text += new TextDecoder().decode(value);
      const line = text.split("\n").find((l) => l.startsWith("data:"));
      if (line) return JSON.parse(line.slice("data:".length)) as Json;
    }
  } finally {
    controller.abort();
  }
}

beforeAll(async () => {
  stack = await startGatewayStack(SECRET);
  suspendedToken = await mintToken("acct-suspended", SECRET);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("an accepted delivery, seen by its owner", () => {
  it("answers a stage on every read right after the 202, never 404", async () => {
    const posted = await call("POST", "/v1/deliveryrequests", {
      token: stack.demoToken,
      body: scheduleBody("pkg-outcome-now"),
      headers: { "idempotency-key": "outcome-now" },
    });
    expect(posted.status).toBe(202);
    const id = posted.json.deliveryId as string;
    const reads = await Promise.all([
      call("GET", `/v1/deliveries/${id}`, { token: stack.demoToken }),
      call("GET", `/v1/deliveries/${id}/status`, { token: stack.demoToken }),
      call("GET", `/v2/deliveries/${id}`, { token: stack.demoToken }),
      call("GET", `/v2/deliveries/${id}/status`, { token: stack.demoToken }),
    ]);
    for (const read of reads) {
      expect(read.status).toBe(200);
      expect(read.json.stage).toMatch(/^DELIVERY_STAGE_(REQUESTED|CREATED|HEADED_TO_PICKUP|HEADED_TO_DROPOFF|COMPLETED)$/);
    }
    const first = await firstStreamEvent(id, stack.demoToken);
    expect(first.event?.stage ?? first.stage).toMatch(/^DELIVERY_STAGE_/);
    // Another account sees nothing of it.
    expect((await call("GET", `/v1/deliveries/${id}`, { token: stack.contosoToken })).status).toBe(404);
  });

  it("shows a failed delivery's code and reason on every version, and refuses to reschedule it", async () => {
    const posted = await call("POST", "/v1/deliveryrequests", {
      token: suspendedToken,
      body: scheduleBody("pkg-outcome-suspended"),
      headers: { "idempotency-key": "outcome-suspended" },
    });
    expect(posted.status).toBe(202);
    const id = posted.json.deliveryId as string;
    const failed = await vi.waitFor(
      async () => {
        const res = await call("GET", `/v1/deliveries/${id}`, { token: suspendedToken });
        if (res.json.stage !== "DELIVERY_STAGE_FAILED") throw new Error(`stage ${res.json.stage}`);
        return res.json;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(failed.failureCode).toBe("FAILURE_CODE_ACCOUNT_NOT_ALLOWED");
    expect(failed.endReason).toMatch(/may not order/);
    const status = await call("GET", `/v1/deliveries/${id}/status`, { token: suspendedToken });
    expect(status.json).toMatchObject({ stage: "DELIVERY_STAGE_FAILED", failureCode: "FAILURE_CODE_ACCOUNT_NOT_ALLOWED" });
    const v2 = await call("GET", `/v2/deliveries/${id}`, { token: suspendedToken });
    expect(v2.json).toMatchObject({ stage: "DELIVERY_STAGE_FAILED", failureCode: "FAILURE_CODE_ACCOUNT_NOT_ALLOWED" });

    const patch = await call("PATCH", `/v1/deliveryrequests/${id}`, {
      token: suspendedToken,
      body: { dropoff: { latitude: 47.64, longitude: -122.37 }, updateMask: "dropoff" },
    });
    expect(patch.status).toBe(400);
    expect(patch.json.code).toBe("failed_precondition");
    expect(patch.json.message).toMatch(/can no longer be rescheduled/);
  });
});
