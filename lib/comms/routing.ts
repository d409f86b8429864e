/**
 * Clients made of several channels, chosen per call:
 * - streams apart: a service's streaming methods get a channel of their own, balanced by
 *   outstanding calls only (a stream's duration says nothing of an instance's speed), while its
 *   unary methods are balanced by latency and outstanding calls;
 * - versions side by side: a second build of a service (the canary, `<NAME>_CANARY_ADDRESS`) runs
 *   beside the first, and each call goes to it when it carries the canary flag (`x-canary: 1` in
 *   its metadata; the gateway sets it from the public request header of the same name), to the
 *   first when the flag says `0`, and otherwise to the canary for `<NAME>_CANARY_WEIGHT` percent of
 *   calls (default 0: only flagged calls).
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Metadata } from "@grpc/grpc-js";
import type { CallOptions, Client } from "../grpc/index.js";
import { envInt, envPrefix, envString, type Env } from "../service/config.js";

/** Metadata key (and public request header) that routes a call to the canary version. */
export const CANARY_HEADER = "x-canary";

/** The canary flag of a call's metadata: true for `1`/`true`, false for `0`/`false`, else undefined. */
export function canaryFlag(metadata: CallOptions["metadata"]): boolean | undefined {
  if (metadata === undefined) return undefined;
  const raw = metadata instanceof Metadata ? metadata.get(CANARY_HEADER)[0] : metadata[CANARY_HEADER];
  return parseCanaryValue(typeof raw === "string" ? raw : undefined);
}

/** `1`/`true`/`yes` → true, `0`/`false`/`no` → false, anything else (or nothing) → undefined. */
export function parseCanaryValue(value: string | null | undefined): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  const v = value.trim().toLowerCase();
  if (v === "1" || v === "true" || v === "yes") return true;
  if (v === "0" || v === "false" || v === "no") return false;
  return undefined;
}

export interface CanaryRoute {
  /** Address (or list of instances) of the canary version. */
  readonly address: string;
  /** Percent of unflagged calls sent to the canary, 0-100. */
  readonly weightPercent: number;
}

/** The canary of `target` from `<NAME>_CANARY_ADDRESS` and `<NAME>_CANARY_WEIGHT`; undefined when none. */
export function readCanaryRoute(env: Env, target: string): CanaryRoute | undefined {
  const prefix = envPrefix(target);
  const address = envString(env, `${prefix}CANARY_ADDRESS`, "").trim();
  if (address === "") return undefined;
  return { address, weightPercent: envInt(env, `${prefix}CANARY_WEIGHT`, 0, { min: 0, max: 100 }) };
}

/**
 * A client whose every call is made by the member `choose` names for it. Closing closes every
 * member; ready when every member is; `grpcClient` is the first member's.
 */
export function routedClient<S extends DescService>(
  service: S,
  members: readonly Client<S>[],
  choose: (method: DescMethod, options: CallOptions | undefined) => Client<S>,
): Client<S> {
  const first = members[0];
  if (first === undefined) throw new Error("routedClient: no member");
  const client: Record<string, unknown> = {
    close: () => {
      for (const member of members) member.close();
    },
    waitForReady: (deadline: Date | number) => Promise.all(members.map((member) => member.waitForReady(deadline))).then(() => undefined),
    grpcClient: first.grpcClient,
  };
  for (const method of service.methods) {
    const name = method.localName;
    client[name] = (request: unknown, options?: CallOptions) => {
      const member = choose(method, options) as unknown as Record<string, (request: unknown, options?: CallOptions) => unknown>;
      return member[name]!(request, options);
    };
  }
  return client as Client<S>;
}

/** True when the service has a streaming method. */
export function hasStreams(service: DescService): boolean {
  return service.methods.some((method) => method.methodKind !== "unary");
}

/** Unary methods to `unary`, streaming ones to `streams`. */
export function streamsApart<S extends DescService>(service: S, unary: Client<S>, streams: Client<S>): Client<S> {
  return routedClient(service, [unary, streams], (method) => (method.methodKind === "unary" ? unary : streams));
}

/** Flagged calls to `canary`, flagged `0` to `stable`, the rest by weight. */
export function canarySplit<S extends DescService>(
  service: S,
  stable: Client<S>,
  canary: Client<S>,
  weightPercent: number,
  random: () => number = Math.random,
): Client<S> {
  return routedClient(service, [stable, canary], (_method, options) => {
    const flag = canaryFlag(options?.metadata);
    if (flag !== undefined) return flag ? canary : stable;
    return weightPercent > 0 && random() * 100 < weightPercent ? canary : stable;
  });
}
