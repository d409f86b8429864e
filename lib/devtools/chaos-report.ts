/**
 * The table and verdict of `make chaos` (scripts/chaos.ts), from what it saw: the answers to its
 * schedule requests, each accepted delivery as GET /v1/deliveries/{id} showed it at the end, the
 * owner's list of deliveries and the Drone service's assignments. Pure functions.
 */

/** The stages in which a delivery has ended (the public API's names, without the prefix). */
export const TERMINAL_STAGES: readonly string[] = ["COMPLETED", "CANCELLED", "FAILED"];

/** What one schedule request (one idempotency key) got. */
export interface RequestRecord {
  readonly key: string;
  /** Every distinct delivery id answered for this key (more than one is a duplicate). */
  readonly ids: readonly string[];
  /** accepted: 202; rejected: another final answer; unanswered: retries ran out. */
  readonly outcome: "accepted" | "rejected" | "unanswered";
  /** The last HTTP status (or "network") when not accepted. */
  readonly lastAnswer?: string;
  /** Sent again with its key and not answered 202 with a delivery id: what it answered. */
  readonly resentAnswer?: string;
}

/** An accepted delivery as the public API showed it at the end. */
export interface DeliveryObservation {
  readonly id: string;
  /** The stage without its `DELIVERY_STAGE_` prefix; undefined when not found or not read. */
  readonly stage?: string | undefined;
  /** The failure code (without `FAILURE_CODE_`) or the end reason, for a failed delivery. */
  readonly failure?: string | undefined;
  /** GET answered 404. */
  readonly notFound: boolean;
  /** The last read failed otherwise (neither 200 nor 404): what it answered. */
  readonly error?: string | undefined;
}

/** A drone's assignment to a delivery: from assign time to end time (open while active). */
export interface AssignmentSpan {
  readonly deliveryId: string;
  readonly droneId: string;
  readonly start: number;
  readonly end?: number | undefined;
}

export interface ChaosFindings {
  readonly requests: readonly RequestRecord[];
  /** By delivery id, for every accepted delivery. */
  readonly observations: ReadonlyMap<string, DeliveryObservation>;
  /** Every delivery id the owner's list showed, in order (undefined when it could not be read). */
  readonly listed?: readonly string[] | undefined;
  /** The Drone service's assignments (undefined when they could not be read). */
  readonly assignments?: readonly AssignmentSpan[] | undefined;
  /** The end of the run: open assignments last until then. */
  readonly now: number;
}

export interface ChaosReport {
  readonly sent: number;
  readonly accepted: number;
  readonly rejected: Readonly<Record<string, number>>;
  readonly unanswered: number;
  /** Sent again with their key and answered otherwise than 202 (by answer); not a verdict. */
  readonly resentOtherwise: Readonly<Record<string, number>>;
  readonly completed: number;
  readonly cancelled: number;
  readonly failed: number;
  readonly failedBy: Readonly<Record<string, number>>;
  readonly stuck: number;
  readonly stuckBy: Readonly<Record<string, number>>;
  readonly missing: number;
  readonly duplicates: {
    /** Keys answered with two or more different delivery ids. */
    readonly keys: number;
    /** Delivery ids the owner's list showed more than once (undefined: not read). */
    readonly listedTwice: number | undefined;
    /** Pairs of assignments on one drone at overlapping times (undefined: not read). */
    readonly overlappingAssignments: number | undefined;
  };
  readonly duplicated: number;
  /** Examples of each problem, for the reader to look up in the logs. */
  readonly examples: Readonly<Record<string, readonly string[]>>;
  /** True when nothing is stuck, missing or duplicated and something was accepted. */
  readonly ok: boolean;
  readonly problems: readonly string[];
}

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

/** The stage's short name: `DELIVERY_STAGE_COMPLETED` -> `COMPLETED`. */
export function shortStage(stage: string | undefined): string | undefined {
  return stage?.replace(/^DELIVERY_STAGE_/, "");
}

/** The pairs of assignments that put one drone on two deliveries at overlapping times. */
export function overlappingAssignments(spans: readonly AssignmentSpan[], now: number): [AssignmentSpan, AssignmentSpan][] {
  const byDrone = new Map<string, AssignmentSpan[]>();
  for (const span of spans) {
    const list = byDrone.get(span.droneId) ?? [];
    list.push(span);
    byDrone.set(span.droneId, list);
  }
  const pairs: [AssignmentSpan, AssignmentSpan][] = [];
  for (const list of byDrone.values()) {
    list.sort((a, b) => a.start - b.start);
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!;
      const aEnd = a.end ?? now;
      for (let j = i + 1; j < list.length; j++) {
        const b = list[j]!;
        if (b.start >= aEnd) break;
        // Touching is not overlapping: b starts before a ends, and a started before b ends.
        if (a.start < (b.end ?? now)) pairs.push([a, b]);
      }
    }
  }
  return pairs;
}

const EXAMPLES = 5;

export function summarize(findings: ChaosFindings): ChaosReport {
  const rejected: Record<string, number> = {};
  const resentOtherwise: Record<string, number> = {};
  const failedBy: Record<string, number> = {};
  const stuckBy: Record<string, number> = {};
  const examples: Record<string, string[]> = { stuck: [], missing: [], "duplicate keys": [], "listed twice": [], "overlapping assignments": [] };
  const example = (what: string, text: string) => {
    const list = (examples[what] ??= []);
    if (list.length < EXAMPLES) list.push(text);
  };
  let accepted = 0;
  let unanswered = 0;
  let duplicateKeys = 0;
  const acceptedIds = new Set<string>();
  for (const request of findings.requests) {
    if (request.outcome === "accepted") {
      accepted++;
      for (const id of request.ids) acceptedIds.add(id);
    } else if (request.outcome === "unanswered") unanswered++;
    else count(rejected, request.lastAnswer ?? "?");
    if (request.resentAnswer) count(resentOtherwise, request.resentAnswer);
    if (request.ids.length > 1) {
      duplicateKeys++;
      example("duplicate keys", `${request.key}: ${request.ids.join(", ")}`);
    }
  }
  let completed = 0;
  let cancelled = 0;
  let failed = 0;
  let stuck = 0;
  let missing = 0;
  for (const id of acceptedIds) {
    const seen = findings.observations.get(id);
    const stage = seen?.stage;
    if (seen?.notFound) {
      missing++;
      example("missing", id);
    } else if (stage === "COMPLETED") completed++;
    else if (stage === "CANCELLED") cancelled++;
    else if (stage === "FAILED") {
      failed++;
      count(failedBy, seen?.failure || "(no code or reason)");
    } else {
      stuck++;
      const at = stage ?? (seen?.error ? `unreadable: ${seen.error}` : "never read");
      count(stuckBy, at);
      example("stuck", `${id} (${at})`);
    }
  }
  let listedTwice: number | undefined;
  if (findings.listed) {
    const seen = new Map<string, number>();
    for (const id of findings.listed) seen.set(id, (seen.get(id) ?? 0) + 1);
    listedTwice = 0;
    for (const [id, times] of seen) {
      if (times > 1) {
        listedTwice++;
        example("listed twice", `${id} (${times} times)`);
      }
    }
  }
  let overlapping: number | undefined;
  if (findings.assignments) {
    const pairs = overlappingAssignments(findings.assignments, findings.now);
    overlapping = pairs.length;
    for (const [a, b] of pairs) example("overlapping assignments", `${a.droneId}: ${a.deliveryId} and ${b.deliveryId}`);
  }
  const duplicated = duplicateKeys + (listedTwice ?? 0) + (overlapping ?? 0);
  const problems: string[] = [];
  if (stuck > 0) problems.push(`${stuck} stuck`);
  if (missing > 0) problems.push(`${missing} missing`);
  if (duplicated > 0) problems.push(`${duplicated} duplicated`);
  if (accepted === 0) problems.push("no request was accepted");
  return {
    sent: findings.requests.length,
    accepted,
    rejected,
    unanswered,
    resentOtherwise,
    completed,
    cancelled,
    failed,
    failedBy,
    stuck,
    stuckBy,
    missing,
    duplicates: { keys: duplicateKeys, listedTwice, overlappingAssignments: overlapping },
    duplicated,
    examples,
    ok: problems.length === 0,
    problems,
  };
}

/** The report as the lines of a table. */
export function formatReport(report: ChaosReport): string[] {
  const rows: [string, string][] = [];
  const breakdown = (by: Readonly<Record<string, number>>) =>
    Object.entries(by)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `    ${k}: ${v}`);
  rows.push(["requests sent (one key each)", String(report.sent)]);
  rows.push(["accepted (202)", String(report.accepted)]);
  const rejectedTotal = Object.values(report.rejected).reduce((a, b) => a + b, 0);
  rows.push(["rejected (final answer, not 202)", rejectedTotal === 0 ? "0" : `${rejectedTotal} (${Object.entries(report.rejected).map(([k, v]) => `${k}: ${v}`).join(", ")})`]);
  rows.push(["unanswered (retries ran out)", String(report.unanswered)]);
  const resent = Object.entries(report.resentOtherwise);
  if (resent.length > 0) rows.push(["resent with its key, not 202", resent.map(([k, v]) => `${k}: ${v}`).join(", ")]);
  rows.push(["completed", String(report.completed)]);
  rows.push(["cancelled", String(report.cancelled)]);
  rows.push(["failed", String(report.failed)]);
  const lines = rows.map(([k, v]) => `  ${k.padEnd(36)} ${v}`);
  lines.push(...breakdown(report.failedBy));
  lines.push(`  ${"stuck (accepted, not ended)".padEnd(36)} ${report.stuck}`);
  lines.push(...breakdown(report.stuckBy));
  lines.push(`  ${"missing (accepted, GET answers 404)".padEnd(36)} ${report.missing}`);
  lines.push(`  ${"duplicated".padEnd(36)} ${report.duplicated}`);
  const shown = (n: number | undefined) => (n === undefined ? "not read" : String(n));
  lines.push(`    one key, two delivery ids: ${report.duplicates.keys}`);
  lines.push(`    listed twice by GET /v1/deliveries: ${shown(report.duplicates.listedTwice)}`);
  lines.push(`    one drone on two deliveries at once: ${shown(report.duplicates.overlappingAssignments)}`);
  for (const [what, list] of Object.entries(report.examples)) {
    if (list.length > 0) lines.push(`  e.g. ${what}: ${list.join("; ")}`);
  }
  lines.push("", report.ok ? "verdict: OK (nothing stuck, missing or duplicated)" : `verdict: FAILED (${report.problems.join(", ")})`);
  return lines;
}
