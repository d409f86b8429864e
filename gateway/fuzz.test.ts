// A seeded, bounded fuzz of the public door: thousands of mutated requests over REST, Connect
// (JSON, binary, GET) and gRPC (h2c, framed protobuf) against a running gateway in front of the
// whole platform. Whatever a caller sends, the gateway answers with the caller's fault (4xx,
// INVALID_ARGUMENT, NOT_FOUND, ...) or a success, never with a 5xx, INTERNAL or UNKNOWN, and it is
// still serving afterwards. The inputs come from a seeded PRNG: FUZZ_SEED=<n> replays a run, and a
// failure names its seed and inputs.
import http from "node:http";
import http2 from "node:http2";
import { fromJson, toBinary, type DescMessage, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryApiService } from "../gen/dronedelivery/api/v1/delivery_api_service_pb.js";
import { DeliveryApiService as DeliveryApiServiceV2 } from "../gen/dronedelivery/api/v2/delivery_api_service_pb.js";
import { startGatewayStack, type GatewayStack } from "./test-stack.js";
import { seededRandom } from "../lib/devtools/seeded-random.js";

const SECRET = "gateway-fuzz-secret";
const SEED = Number(process.env["FUZZ_SEED"] ?? 20_240_611);
const HTTP1_INPUTS = 1_500;
const GRPC_INPUTS = 600;
const CONCURRENCY = 8;
/** A request whose answer has not begun by then counts as "still working" (streams), not failed. */
const REQUEST_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Helpers over the seeded generator (lib/devtools/seeded-random.ts).

/** Characters of random text, by code point (no lone surrogates: URLs cannot carry them). */
const ALPHABET = Array.from("abcXYZ019-_.~%/:?#[]@!$&'()*+,;= \u00e9\u4e2d\ud83d\ude80\u0000\n\"\\{}");

class Dice {
  constructor(private readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
  text(n: number): string {
    return Array.from({ length: n }, () => ALPHABET[this.int(ALPHABET.length)]).join("");
  }
}

// ---------------------------------------------------------------------------------------------
// Valid requests to start from: the JSON of every method's input, per version.

const SERVICES: readonly DescService[] = [DeliveryApiService, DeliveryApiServiceV2];
const LOCATION = { latitude: 47.61, longitude: -122.33 };
const DEADLINE = "2031-01-01T00:00:00Z";

function sampleJson(method: DescMethod, id: string): JsonValue {
  const v2 = method.parent.typeName.includes(".v2.");
  switch (method.name) {
    case "ScheduleDelivery":
      return v2
        ? { pickup: LOCATION, dropoff: LOCATION, deadline: DEADLINE, priority: "PRIORITY_EXPEDITED",
            parcels: [{ parcelId: "p-1", size: "PARCEL_SIZE_SMALL", weightKg: 1.2 }] }
        : { pickup: LOCATION, dropoff: LOCATION, deadline: DEADLINE, expedited: true,
            packageInfo: { packageId: "p-1", size: "PACKAGE_SIZE_SMALL", weightKg: 1.2 } };
    case "ListDeliveries":
      return { pageSize: 5, pageToken: "" };
    case "RescheduleDelivery":
      return { deliveryId: id, deadline: DEADLINE, updateMask: "deadline" };
    case "CancelDelivery":
      return { deliveryId: id, reason: "changed my mind" };
    case "ConfirmDelivery":
      return { deliveryId: id, confirmationType: "CONFIRMATION_TYPE_SIGNATURE", proofReference: "sig-1" };
    case "WatchDelivery":
      return { deliveryId: id, includePositions: true };
    default:
      return { deliveryId: id };
  }
}

function sampleBytes(method: DescMethod, id: string): Uint8Array {
  return toBinary(method.input as DescMessage, fromJson(method.input as DescMessage, sampleJson(method, id)));
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const WEIRD_VALUES: readonly JsonValue[] = [
  null, true, false, 0, -1, 1.5, -0, 1e308, -1e308, 2 ** 53 + 1, 4294967296, "", "NaN", "Infinity", "-Infinity",
  "x".repeat(5000), "\u0000", "\ud800", "2030-13-45T99:99:99Z", "1e999", "0x10", [], {}, [1, "a", null],
  { "@type": "type.googleapis.com/google.protobuf.Empty" }, "PACKAGE_SIZE_LARGE", "PRIORITY_UNSPECIFIED", 99,
];

function deep(depth: number): JsonValue {
  let value: JsonValue = 1;
  for (let i = 0; i < depth; i++) value = { pickup: value };
  return value;
}

/** A copy of `value` with one random change somewhere inside. */
function mutateJson(dice: Dice, value: JsonValue, budget = 3): JsonValue {
  if (value === null || typeof value !== "object" || budget === 0 || dice.chance(0.25)) {
    return dice.chance(0.1) ? deep(dice.pick([10, 64, 200])) : dice.pick(WEIRD_VALUES);
  }
  if (Array.isArray(value)) {
    const copy = [...value];
    if (copy.length === 0 || dice.chance(0.3)) copy.push(dice.pick(WEIRD_VALUES));
    else copy[dice.int(copy.length)] = mutateJson(dice, copy[dice.int(copy.length)] as JsonValue, budget - 1);
    return copy;
  }
  const copy: Record<string, JsonValue> = { ...value };
  const keys = Object.keys(copy);
  const roll = dice.int(10);
  if (roll === 0 && keys.length > 0) delete copy[dice.pick(keys)];
  else if (roll === 1) copy[dice.pick(["unknownField", "owner_id", "ownerId", "__proto__", "", "package_info", "parcels"])] = dice.pick(WEIRD_VALUES);
  else if (keys.length > 0) {
    const key = dice.pick(keys);
    copy[key] = mutateJson(dice, copy[key] as JsonValue, budget - 1);
  }
  return copy;
}

function mutateBytes(dice: Dice, bytes: Uint8Array): Uint8Array {
  const b = Uint8Array.from(bytes);
  switch (dice.int(7)) {
    case 0: // flip a few bits
      for (let i = 0; i < 1 + dice.int(4) && b.length > 0; i++) b[dice.int(b.length)]! ^= 1 << dice.int(8);
      return b;
    case 1: // truncate
      return b.subarray(0, dice.int(Math.max(1, b.length)));
    case 2: // insert random bytes
    {
      const at = dice.int(b.length + 1);
      return Uint8Array.from([...b.subarray(0, at), ...dice.bytes(1 + dice.int(16)), ...b.subarray(at)]);
    }
    case 3: // all random
      return dice.bytes(dice.int(64));
    case 4: // a bad tag / wire type up front
      return Uint8Array.from([dice.pick([0x00, 0x07, 0x0f, 0xff, 0x7f, 0x80]), ...b]);
    case 5: // an overlong varint length
      return Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, ...b]);
    default: // duplicated slice
      return Uint8Array.from([...b, ...b.subarray(dice.int(b.length + 1))]);
  }
}

function weirdId(dice: Dice): string {
  return dice.pick([
    "dlv-000000000000000000000000",
    "",
    "%00",
    "..%2F..%2Fetc",
    "a".repeat(300),
    "%E2%98%83",
    "%ZZ",
    "dlv-" + dice.text(6).replace(/[^a-z0-9]/gi, "x"),
    "*",
    encodeURIComponent(dice.text(8)),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Sending.

interface Outcome {
  readonly input: string;
  /** HTTP status; 0 when none came in time (a stream still open) or the connection broke. */
  readonly status: number;
  /** gRPC status, or the Connect error code found in the body. */
  readonly code?: string | undefined;
  /** The caller set its own timeout (then running out of time, 504, is its choice). */
  readonly timeoutSet?: boolean;
}

/** Headers for a failure message, without the (long, valid) token. */
function shownHeaders(headers: Record<string, string>): string {
  const { authorization, ...rest } = headers;
  return JSON.stringify({ ...rest, ...(authorization === undefined ? {} : { authorization: authorization.slice(0, 12) }) }).slice(0, 300);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(
  base: URL,
  input: { method: string; path: string; headers: Record<string, string>; body?: Uint8Array | string },
): Promise<Outcome> {
  const label = `${input.method} ${input.path.slice(0, 160)} ${shownHeaders(input.headers)} body=${
    input.body === undefined ? "-" : Buffer.from(input.body).toString("base64").slice(0, 200)
  }`;
  return new Promise((resolve) => {
    let req: http.ClientRequest;
    try {
      req = http.request({
        agent,
        host: base.hostname,
        port: base.port,
        method: input.method,
        path: input.path,
        headers: input.headers,
        timeout: REQUEST_TIMEOUT_MS,
      });
    } catch {
      resolve({ input: label, status: -1 }); // the client itself refused to send it
      return;
    }
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ input: label, status: 0 });
    }, REQUEST_TIMEOUT_MS);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size < 64 * 1024) chunks.push(chunk);
        // A stream that answers 200 and goes on is a success: stop listening.
        if (res.statusCode === 200 && String(res.headers["content-type"]).includes("event-stream")) res.destroy();
      });
      const done = () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("utf8");
        const code = /"code"\s*:\s*"(internal|unknown|data_loss)"/.exec(text)?.[1];
        resolve({ input: label, status: res.statusCode ?? 0, code, timeoutSet: "connect-timeout-ms" in input.headers });
      };
      res.on("end", done);
      res.on("close", done);
      res.on("error", done);
    });
    req.on("error", () => {
      clearTimeout(timer);
      resolve({ input: label, status: 0 });
    });
    if (input.body !== undefined) req.write(input.body);
    req.end();
  });
}

function frame(payload: Uint8Array, flag = 0, declaredLength = payload.length): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(flag, 0);
  header.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([header, payload]);
}

function sendGrpc(
  session: http2.ClientHttp2Session,
  input: { path: string; headers: Record<string, string>; body: Buffer },
): Promise<Outcome> {
  const label = `grpc ${input.path} ${shownHeaders(input.headers)} body=${input.body.toString("base64").slice(0, 200)}`;
  return new Promise((resolve) => {
    let status: string | undefined;
    let httpStatus = 0;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ input: label, status: httpStatus, code: status });
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ":method": "POST", ":path": input.path, te: "trailers", ...input.headers });
    } catch {
      resolve({ input: label, status: -1 });
      return;
    }
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      finish();
    }, REQUEST_TIMEOUT_MS);
    stream.on("response", (headers) => {
      httpStatus = Number(headers[":status"] ?? 0);
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
    });
    stream.on("trailers", (trailers) => {
      if (trailers["grpc-status"] !== undefined) status = String(trailers["grpc-status"]);
    });
    stream.on("data", () => {});
    stream.on("end", finish);
    stream.on("close", finish);
    stream.on("error", finish);
    stream.end(input.body);
  });
}

async function runPool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) results[i] = await task(i);
    }),
  );
  return results;
}

// ---------------------------------------------------------------------------------------------
// Input generators.

function rpcMethods(): DescMethod[] {
  return SERVICES.flatMap((s) => s.methods);
}

function restInput(dice: Dice, token: string, id: string) {
  const v2 = dice.chance(0.5);
  const p = v2 ? "/v2" : "/v1";
  const deliveryId = dice.chance(0.4) ? weirdId(dice) : id;
  const paths = v2
    ? [`${p}/deliveries`, `${p}/deliveries/${deliveryId}`, `${p}/deliveries/${deliveryId}:cancel`, `${p}/deliveries/${deliveryId}/status`,
       `${p}/deliveries/${deliveryId}/confirmations`, `${p}/deliveries/${deliveryId}/history`, `${p}/deliveries/${deliveryId}/events`,
       `${p}/deliveries/${deliveryId}:${dice.text(3)}`, `${p}/deliveries?pageSize=${dice.pick(["-1", "abc", "99999999999", "5"])}&pageToken=${weirdId(dice)}`]
    : [`${p}/deliveryrequests`, `${p}/deliveryrequests/${deliveryId}`, `${p}/deliveries/${deliveryId}`, `${p}/deliveries/${deliveryId}/owner`,
       `${p}/deliveries/${deliveryId}/status`, `${p}/deliveries/${deliveryId}/confirmations`, `${p}/deliveries/${deliveryId}/history`,
       `${p}/deliveries/${deliveryId}/events?includePositions=${dice.pick(["true", "yes", "1", ""])}&afterSequence=${dice.pick(["1", "-1", "x", "1e3"])}`,
       `${p}/deliveryrequests/${deliveryId}?reason=${encodeURIComponent(dice.text(5))}`, `${p}/${dice.text(4).replace(/[^a-z]/g, "x")}`,
       `${p}/deliveries?${dice.pick(["page_size=2", "pageSize=x", "unknown=1", "pageSize=1&pageSize=2", "%zz=1"])}`];
  const method = dice.pick(["GET", "GET", "POST", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "FROB"]);
  const schedule = rpcMethods().find((m) => m.name === "ScheduleDelivery" && m.parent.typeName.includes(v2 ? ".v2." : ".v1."))!;
  let body: string | undefined;
  if (method !== "GET" && method !== "HEAD") {
    const base = sampleJson(schedule, id);
    body = dice.pick([
      () => JSON.stringify(mutateJson(dice, base)),
      () => JSON.stringify(mutateJson(dice, mutateJson(dice, base))),
      () => JSON.stringify(base).slice(0, dice.int(60)),
      () => dice.text(20),
      () => "",
      () => JSON.stringify({ deadline: DEADLINE, updateMask: dice.pick(["", "deadline,bogus", "owner_id", "*"]) }),
      () => JSON.stringify(dice.pick(WEIRD_VALUES)),
    ])();
  }
  const headers: Record<string, string> = {};
  if (dice.chance(0.9)) headers.authorization = `Bearer ${token}`;
  else headers.authorization = dice.pick(["Bearer", "Bearer a.b.c", "Basic Zm9vOmJhcg==", `Bearer ${token}x`, `bearer  ${token}`]);
  if (body !== undefined) headers["content-type"] = dice.pick(["application/json", "text/plain", "application/json; charset=latin1", "application/x-www-form-urlencoded"]);
  if (dice.chance(0.2)) headers["idempotency-key"] = dice.pick(["k", "x".repeat(500), "%00", dice.text(6).replace(/[^\x21-\x7e]/g, "_")]);
  if (dice.chance(0.1)) headers["connect-timeout-ms"] = dice.pick(["0", "-5", "abc", "99999999999", "1"]);
  if (dice.chance(0.1)) headers["last-event-id"] = dice.pick(["-1", "abc", "18446744073709551616", "3"]);
  return { method, path: dice.pick(paths), headers, ...(body === undefined ? {} : { body }) };
}

function connectInput(dice: Dice, token: string, id: string) {
  const method = dice.pick(rpcMethods());
  const path = `/${method.parent.typeName}/${dice.chance(0.05) ? dice.text(5) : method.name}`;
  const headers: Record<string, string> = dice.chance(0.9) ? { authorization: `Bearer ${token}` } : {};
  if (dice.chance(0.5)) headers["connect-protocol-version"] = dice.pick(["1", "2", ""]);
  const streaming = method.methodKind === "server_streaming";
  const kind = dice.int(3);
  if (kind === 0 && method.idempotency !== 0) {
    // GET, for no-side-effect methods (and the others, which must refuse it).
    const binary = dice.chance(0.5);
    const bytes = mutateBytes(dice, sampleBytes(method, id));
    const message = binary
      ? dice.pick([Buffer.from(bytes).toString("base64url"), "!!!not-base64!!!", "a", "ab=c", "%ZZ", Buffer.from(bytes).toString("base64")])
      : encodeURIComponent(dice.chance(0.5) ? JSON.stringify(mutateJson(dice, sampleJson(method, id))) : dice.text(10));
    const params = [
      `connect=${dice.pick(["v1", "v2", ""])}`,
      `encoding=${binary ? dice.pick(["proto", "proto", "json", "xml"]) : dice.pick(["json", "json", "proto"])}`,
      binary ? `base64=${dice.pick(["1", "1", "0", "true"])}` : "",
      dice.chance(0.1) ? `compression=${dice.pick(["gzip", "br", "zip"])}` : "",
      `message=${message}`,
    ].filter((s) => s !== "");
    return { method: "GET", path: `${path}?${params.join("&")}`, headers };
  }
  if (kind === 1) {
    headers["content-type"] = streaming ? "application/connect+json" : dice.pick(["application/json", "application/json; charset=utf-8", "text/json"]);
    const json = JSON.stringify(dice.chance(0.8) ? mutateJson(dice, sampleJson(method, id)) : dice.text(12));
    const body = streaming ? frame(Buffer.from(json), dice.pick([0, 0, 1, 2, 0x80])) : json;
    return { method: "POST", path, headers, body };
  }
  headers["content-type"] = streaming ? "application/connect+proto" : dice.pick(["application/proto", "application/proto", "application/x-protobuf"]);
  if (dice.chance(0.1)) headers["content-encoding"] = dice.pick(["gzip", "br", "identity", "zstd"]);
  const bytes = mutateBytes(dice, sampleBytes(method, id));
  const body = streaming ? frame(bytes, dice.pick([0, 0, 0, 1, 2]), dice.chance(0.9) ? bytes.length : dice.int(100)) : bytes;
  return { method: "POST", path, headers, body };
}

function grpcInput(dice: Dice, token: string, id: string) {
  const method = dice.pick(rpcMethods());
  const headers: Record<string, string> = {
    "content-type": dice.pick(["application/grpc", "application/grpc", "application/grpc+proto", "application/grpc+json"]),
  };
  if (dice.chance(0.9)) headers.authorization = `Bearer ${token}`;
  if (dice.chance(0.1)) headers["grpc-encoding"] = dice.pick(["gzip", "identity", "snappy"]);
  if (dice.chance(0.1)) headers["grpc-timeout"] = dice.pick(["1S", "0m", "abc", "99999999999H", "5m"]);
  const json = headers["content-type"] === "application/grpc+json";
  const payload = json
    ? Buffer.from(JSON.stringify(mutateJson(dice, sampleJson(method, id))))
    : mutateBytes(dice, sampleBytes(method, id));
  const shape = dice.int(10);
  const body =
    shape === 0
      ? frame(payload, 1) // compressed flag
      : shape === 1
        ? frame(payload, 0, payload.length + 1 + dice.int(10)) // shorter than declared
        : shape === 2
          ? Buffer.concat([frame(payload), frame(payload)]) // two messages for a unary call
          : shape === 3
            ? Buffer.from(dice.bytes(dice.int(4))) // not even a frame header
            : frame(payload);
  return { path: `/${method.parent.typeName}/${method.name}`, headers, body };
}

// ---------------------------------------------------------------------------------------------

let stack: GatewayStack | undefined;

beforeAll(async () => {
  stack = await startGatewayStack(SECRET);
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await stack?.stop();
});

/** True when an answer is the platform's own failure rather than the caller's. */
function isServerFault(outcome: Outcome, grpc: boolean): boolean {
  if (outcome.status === 504 && outcome.timeoutSet) return false;
  if (outcome.status >= 500) return true;
  if (grpc) return outcome.code === "13" || outcome.code === "2" || outcome.code === "15";
  return outcome.code !== undefined;
}

describe(`gateway fuzz (seed ${SEED})`, () => {
  it("answers every mutated request with a success or the caller's fault, and keeps serving", async () => {
    const gateway = stack!.gateway;
    const token = stack!.demoToken;
    const dice = new Dice(seededRandom(SEED));
    // A delivery of the caller's, so that some mutations reach past the ownership check.
    const accepted = await fetch(`${gateway.url}/v1/deliveryrequests`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(sampleJson(DeliveryApiService.methods.find((m) => m.name === "ScheduleDelivery")!, "")),
    });
    expect(accepted.status).toBe(202);
    const id = ((await accepted.json()) as { deliveryId: string }).deliveryId;

    // The inputs are drawn up front, in order, so the seed alone decides them.
    const base = new URL(gateway.url);
    const http1 = Array.from({ length: HTTP1_INPUTS }, () => (dice.chance(0.45) ? restInput(dice, token, id) : connectInput(dice, token, id)));
    const grpc = Array.from({ length: GRPC_INPUTS }, () => grpcInput(dice, token, id));

    const http1Outcomes = await runPool(http1.length, CONCURRENCY, (i) => send(base, http1[i]!));
    const session = http2.connect(gateway.grpcUrl);
    session.on("error", () => {});
    let grpcOutcomes: Outcome[];
    try {
      grpcOutcomes = await runPool(grpc.length, CONCURRENCY, (i) => sendGrpc(session, grpc[i]!));
    } finally {
      session.close();
    }

    const faults = [
      ...http1Outcomes.filter((o) => isServerFault(o, false)),
      ...grpcOutcomes.filter((o) => isServerFault(o, true)),
    ];
    expect(faults.slice(0, 15), `seed ${SEED}: ${faults.length} of ${http1.length + grpc.length} answered as server faults`).toEqual([]);
    // Nearly every input got an answer (a few valid streams may stay open; the client refuses a few).
    const answered = [...http1Outcomes, ...grpcOutcomes].filter((o) => o.status > 0).length;
    expect(answered).toBeGreaterThan((http1.length + grpc.length) * 0.95);

    // Still serving: health, a Connect read and a gRPC read.
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    const read = await fetch(`${gateway.url}/dronedelivery.api.v1.DeliveryApiService/ListDeliveries`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(read.status).toBe(200);
    const check = http2.connect(gateway.grpcUrl);
    check.on("error", () => {});
    try {
      const list = DeliveryApiService.methods.find((m) => m.name === "ListDeliveries")!;
      const outcome = await sendGrpc(check, {
        path: `/${DeliveryApiService.typeName}/ListDeliveries`,
        headers: { "content-type": "application/grpc", authorization: `Bearer ${token}` },
        body: frame(sampleBytes(list, id)),
      });
      expect(outcome.code).toBe("0");
    } finally {
      check.close();
    }
  }, 120_000);
});
