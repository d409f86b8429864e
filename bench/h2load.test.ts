import { describe, expect, it } from "vitest";
import { answeredMs, grpcFrame, h2loadArgs, latencyOf, parseDurationMs, parseH2loadLog, parseH2loadOutput } from "./h2load.js";

// Captured from h2load nghttp2/1.52.0: a timed HTTP/1.1 run against node:http.
const TIMED_RUN = `starting benchmark...
spawning thread #0: 4 total client(s). Timing-based test with 1s of warm-up time and 2s of main duration for measurements.
Warm-up started for thread #0.
progress: 25% of clients started
progress: 50% of clients started
progress: 75% of clients started
progress: 100% of clients started
Application protocol: http/1.1
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 3.00s, 8279.50 req/s, 2.26MB/s
requests: 16559 total, 16559 started, 16559 done, 16559 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 16559 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 4.52MB (4735874) total, 2.17MB (2271184) headers (space savings 0.00%), 1.96MB (2051392) data
                     min         max         mean         sd        +/- sd
time for request:       55us     49.03ms       482us      1.31ms    97.64%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :    2057.91     2081.42     2069.80        9.82    50.00%
`;

// A counted run whose every answer was a 404.
const NOT_FOUND_RUN = `starting benchmark...
spawning thread #0: 4 total client(s). 200 total requests
Application protocol: http/1.1
progress: 10% done
progress: 20% done
progress: 30% done
progress: 40% done
progress: 50% done
progress: 60% done
progress: 70% done
progress: 80% done
progress: 90% done
progress: 100% done

finished in 102.92ms, 1943.24 req/s, 556.02KB/s
requests: 200 total, 200 started, 200 done, 0 succeeded, 200 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 200 4xx, 0 5xx
traffic: 57.23KB (58600) total, 24.22KB (24800) headers (space savings 0.00%), 21.88KB (22400) data
                     min         max         mean         sd        +/- sd
time for request:       74us     16.31ms      1.89ms      2.98ms    91.50%
time for connect:      132us       489us       282us       151us    75.00%
time to 1st byte:     3.29ms      3.55ms      3.40ms       111us    75.00%
req/s           :     488.86      620.42      530.29       60.96    75.00%
`;

// A run against nothing listening: every request errored.
const REFUSED_RUN = `starting benchmark...
spawning thread #0: 8 total client(s). 2000 total requests

finished in 6.13ms, 0.00 req/s, 0B/s
requests: 2000 total, 0 started, 0 done, 0 succeeded, 2000 failed, 2000 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 0B (0) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :       0.00        0.00        0.00        0.00   100.00%
`;

describe("parseH2loadOutput", () => {
  it("reads rate, request counts, status classes and request times of a timed run", () => {
    const summary = parseH2loadOutput(TIMED_RUN);
    expect(summary.finishedS).toBe(3);
    expect(summary.reqPerS).toBe(8279.5);
    expect(summary.requests).toEqual({ total: 16559, started: 16559, done: 16559, succeeded: 16559, failed: 0, errored: 0, timeout: 0 });
    expect(summary.status).toEqual({ "2xx": 16559, "3xx": 0, "4xx": 0, "5xx": 0 });
    expect(summary.requestMs).toEqual({ min: 0.055, max: 49.03, mean: 0.482, sd: 1.31 });
    expect(summary.protocol).toBe("http/1.1");
  });

  it("counts answers that are not 2xx as failed", () => {
    const summary = parseH2loadOutput(NOT_FOUND_RUN);
    expect(summary.requests.succeeded).toBe(0);
    expect(summary.requests.failed).toBe(200);
    expect(summary.status["4xx"]).toBe(200);
    expect(summary.finishedS).toBeCloseTo(0.10292, 6);
  });

  it("reads a run in which nothing answered", () => {
    const summary = parseH2loadOutput(REFUSED_RUN);
    expect(summary.requests.errored).toBe(2000);
    expect(summary.reqPerS).toBe(0);
    expect(summary.protocol).toBeUndefined();
  });

  it("refuses output without a summary", () => {
    expect(() => parseH2loadOutput("starting benchmark...\nconnect to 127.0.0.1 port 1 failed\n")).toThrow(/finished in/);
  });
});

describe("parseDurationMs", () => {
  it("converts h2load's units", () => {
    expect(parseDurationMs("114us")).toBe(0.114);
    expect(parseDurationMs("195.39ms")).toBe(195.39);
    expect(parseDurationMs("2.16s")).toBe(2160);
    expect(() => parseDurationMs("fast")).toThrow();
  });
});

describe("parseH2loadLog", () => {
  // Lines of a captured --log-file: start (µs since the epoch), status, duration (µs).
  const LOG = ["1796603679547513\t200\t2709", "1796603679550273\t200\t3459", "1796603679547505\t500\t9450", "1796603679547999\t200\t1000", ""].join("\n");

  it("reads one entry per request", () => {
    expect(parseH2loadLog(LOG)).toEqual([
      { startUs: 1796603679547513, status: 200, durationUs: 2709 },
      { startUs: 1796603679550273, status: 200, durationUs: 3459 },
      { startUs: 1796603679547505, status: 500, durationUs: 9450 },
      { startUs: 1796603679547999, status: 200, durationUs: 1000 },
    ]);
  });

  it("takes percentiles over the answered requests only", () => {
    const latency = latencyOf(answeredMs(parseH2loadLog(LOG)));
    expect(latency.count).toBe(3);
    expect(latency.p50).toBe(2.709);
    expect(latency.p99).toBe(3.459);
    expect(latency.max).toBe(3.459);
  });

  it("refuses a line that is not a log entry", () => {
    expect(() => parseH2loadLog("progress: 10% done\n")).toThrow(/not an h2load log line/);
  });
});

describe("h2loadArgs", () => {
  it("builds a timed HTTP/1.1 POST run with headers, a body and a log", () => {
    expect(
      h2loadArgs({
        url: "http://127.0.0.1:8080/v1/deliveryrequests",
        h1: true,
        connections: 32,
        durationS: 5,
        warmupS: 1,
        headers: ["authorization: Bearer t"],
        bodyFile: "/tmp/body.json",
        logFile: "/tmp/log.tsv",
      }),
    ).toEqual([
      ...["-t", "1", "-c", "32", "-m", "1", "-D", "5", "--warm-up-time=1", "--h1"],
      ...["-H", "authorization: Bearer t", "-d", "/tmp/body.json", "--log-file=/tmp/log.tsv"],
      "http://127.0.0.1:8080/v1/deliveryrequests",
    ]);
  });
});

describe("grpcFrame", () => {
  it("prefixes a message with the uncompressed flag and its big-endian length", () => {
    expect([...grpcFrame(new Uint8Array([10, 3, 97, 98, 99]))]).toEqual([0, 0, 0, 0, 5, 10, 3, 97, 98, 99]);
    expect([...grpcFrame(new Uint8Array(300)).slice(0, 5)]).toEqual([0, 0, 0, 1, 44]);
  });
});
