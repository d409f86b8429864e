import { describe, expect, it } from "vitest";
import { formatReport, overlappingAssignments, summarize, type DeliveryObservation, type RequestRecord } from "./chaos-report.js";

const accepted = (key: string, ...ids: string[]): RequestRecord => ({ key, ids, outcome: "accepted" });
const seen = (id: string, stage?: string, extra: Partial<DeliveryObservation> = {}): [string, DeliveryObservation] => [
  id,
  { id, stage, notFound: false, ...extra },
];

describe("chaos report", () => {
  it("counts terminal stages, failures by code, stuck and missing deliveries", () => {
    const report = summarize({
      requests: [
        accepted("k1", "d1"),
        accepted("k2", "d2"),
        accepted("k3", "d3"),
        accepted("k4", "d4"),
        accepted("k5", "d5"),
        accepted("k6", "d6"),
        { key: "k7", ids: [], outcome: "rejected", lastAnswer: "400" },
        { key: "k8", ids: [], outcome: "unanswered", lastAnswer: "503" },
        { key: "k9", ids: ["d9"], outcome: "accepted", resentAnswer: "422" },
      ],
      observations: new Map([
        seen("d1", "COMPLETED"),
        seen("d2", "CANCELLED"),
        seen("d3", "FAILED", { failure: "NO_DRONE_AVAILABLE" }),
        seen("d4", "HEADED_TO_PICKUP"),
        seen("d5", undefined, { notFound: true }),
        seen("d9", "COMPLETED"),
      ]),
      listed: ["d1", "d2", "d3", "d4"],
      assignments: [],
      now: 1_000,
    });
    expect(report).toMatchObject({
      sent: 9,
      accepted: 7,
      rejected: { "400": 1 },
      unanswered: 1,
      resentOtherwise: { "422": 1 },
      completed: 2,
      cancelled: 1,
      failed: 1,
      failedBy: { NO_DRONE_AVAILABLE: 1 },
      stuck: 2,
      stuckBy: { HEADED_TO_PICKUP: 1, "never read": 1 },
      missing: 1,
      duplicated: 0,
      ok: false,
    });
    expect(report.problems).toEqual(["2 stuck", "1 missing"]);
    expect(formatReport(report).at(-1)).toBe("verdict: FAILED (2 stuck, 1 missing)");
  });

  it("finds duplicates: one key with two ids, a delivery listed twice, a drone on two deliveries at once", () => {
    const report = summarize({
      requests: [accepted("k1", "d1", "d9"), accepted("k2", "d2")],
      observations: new Map([seen("d1", "COMPLETED"), seen("d9", "COMPLETED"), seen("d2", "COMPLETED")]),
      listed: ["d1", "d2", "d2", "d9"],
      assignments: [
        { deliveryId: "d1", droneId: "drone-0001", start: 0, end: 100 },
        { deliveryId: "d2", droneId: "drone-0001", start: 50, end: 150 },
        { deliveryId: "d9", droneId: "drone-0002", start: 0 },
      ],
      now: 1_000,
    });
    expect(report.duplicates).toEqual({ keys: 1, listedTwice: 1, overlappingAssignments: 1 });
    expect(report.duplicated).toBe(3);
    expect(report.ok).toBe(false);
  });

  it("passes a clean run, and says what it could not read", () => {
    const report = summarize({
      requests: [accepted("k1", "d1")],
      observations: new Map([seen("d1", "FAILED")]),
      now: 0,
    });
    expect(report.ok).toBe(true);
    expect(report.failedBy).toEqual({ "(no code or reason)": 1 });
    const text = formatReport(report).join("\n");
    expect(text).toContain("listed twice by GET /v1/deliveries: not read");
    expect(text).toContain("verdict: OK");
  });

  it("fails a run in which nothing was accepted", () => {
    expect(summarize({ requests: [], observations: new Map(), now: 0 }).problems).toEqual(["no request was accepted"]);
  });

  it("treats back-to-back assignments as not overlapping, and an open one as lasting until now", () => {
    const spans = [
      { deliveryId: "a", droneId: "x", start: 0, end: 10 },
      { deliveryId: "b", droneId: "x", start: 10, end: 20 },
      { deliveryId: "c", droneId: "x", start: 30 },
      { deliveryId: "d", droneId: "x", start: 40, end: 45 },
    ];
    expect(overlappingAssignments(spans, 100).map(([p, q]) => `${p.deliveryId}${q.deliveryId}`)).toEqual(["cd"]);
    expect(overlappingAssignments(spans, 35)).toEqual([]);
  });
});
