// `p2c_ewma`: a grpc-js load-balancing policy that sends each call to the cheaper of two instances
// drawn at random, the cost of an instance being its peak-EWMA latency times its outstanding calls
// plus one (Linkerd's and Finagle's balancer). A slow instance builds up a high latency estimate
// and outstanding calls, and gets few calls; a busy one gets fewer until it drains.
//
// The estimate of an instance is the latency of its calls (from the moment a call is started on
// its connection until its status arrives), peak-sensitive: a call slower than the estimate sets it
// at once; faster calls pull it down along an exponentially weighted moving average whose weight
// grows with the time since the last update (time constant `decay_ms`). Between calls the estimate
// decays towards zero with the same time constant, so an instance that was avoided is tried again
// before long, and an instance never called starts at `default_rtt_ms`.
//
// With `latency: false` the cost is the outstanding calls alone (least outstanding of two): for
// channels of long-lived streams, whose duration says nothing of the instance's speed.
//
// Like round_robin it keeps a connection to every instance and picks among the connected ones; it
// is a valid child of outlier_detection, which ejects an instance by reporting its connection as
// failed to this policy.

import { connectivityState as ConnectivityState, experimental, type ChannelOptions } from "@grpc/grpc-js";

type ChannelControlHelper = experimental.ChannelControlHelper;
type Endpoint = experimental.Endpoint;
type LeafLoadBalancer = experimental.LeafLoadBalancer;
type Picker = experimental.Picker;
type PickArgs = experimental.PickArgs;
type PickResult = experimental.PickResult;
type TypedLoadBalancingConfig = experimental.TypedLoadBalancingConfig;

export const P2C_EWMA_POLICY = "p2c_ewma";

/** Linkerd's time constant of the latency estimate. */
export const DEFAULT_DECAY_MS = 10_000;
/** Estimate of an instance that has not answered yet: low enough that a new instance gets calls soon. */
export const DEFAULT_RTT_MS = 10;

export interface P2cEwmaSettings {
  /** Time constant of the estimate's moving average and of its decay between calls. */
  readonly decayMs: number;
  /** Estimate of an instance before its first answer. */
  readonly defaultRttMs: number;
  /** False: cost is outstanding calls only (channels of long streams). */
  readonly latency: boolean;
}

function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new Error(`${P2C_EWMA_POLICY} config: ${name} must be a positive number`);
  }
  return value;
}

export class P2cEwmaConfig implements TypedLoadBalancingConfig {
  constructor(readonly settings: P2cEwmaSettings) {}

  getLoadBalancerName(): string {
    return P2C_EWMA_POLICY;
  }

  toJsonObject(): object {
    return {
      [P2C_EWMA_POLICY]: {
        decay_ms: this.settings.decayMs,
        default_rtt_ms: this.settings.defaultRttMs,
        latency: this.settings.latency,
      },
    };
  }

  static createFromJson(obj: unknown): P2cEwmaConfig {
    const raw = (obj ?? {}) as Record<string, unknown>;
    if (raw["latency"] !== undefined && typeof raw["latency"] !== "boolean") {
      throw new Error(`${P2C_EWMA_POLICY} config: latency must be a boolean`);
    }
    return new P2cEwmaConfig({
      decayMs: positive(raw["decay_ms"], "decay_ms", DEFAULT_DECAY_MS),
      defaultRttMs: positive(raw["default_rtt_ms"], "default_rtt_ms", DEFAULT_RTT_MS),
      latency: raw["latency"] !== false,
    });
  }
}

/**
 * What the balancer knows of one instance: its calls in flight and its latency estimate. Kept by
 * the balancer across pickers and address updates (keyed by the instance's address).
 */
export class EndpointLoad {
  outstanding = 0;
  /** Calls picked for this instance (for tests and diagnostics). */
  picks = 0;
  private rttMs: number;
  private updatedAt: number;

  constructor(
    private readonly settings: P2cEwmaSettings,
    now: number,
  ) {
    this.rttMs = settings.defaultRttMs;
    this.updatedAt = now;
  }

  /** The latency estimate at `now`, decayed towards zero since the last update. */
  estimateMs(now: number): number {
    const elapsed = Math.max(0, now - this.updatedAt);
    return this.rttMs * Math.exp(-elapsed / this.settings.decayMs);
  }

  /** The cost of sending one more call here: estimate × (outstanding + 1), or outstanding alone. */
  cost(now: number): number {
    if (!this.settings.latency) return this.outstanding;
    return this.estimateMs(now) * (this.outstanding + 1);
  }

  /** Takes in the latency of one finished call. */
  observe(rttMs: number, now: number): void {
    const elapsed = Math.max(0, now - this.updatedAt);
    const current = this.estimateMs(now);
    if (rttMs >= current) {
      this.rttMs = rttMs; // peak: a slower call sets the estimate at once
    } else {
      const weight = Math.exp(-elapsed / this.settings.decayMs);
      this.rttMs = current * weight + rttMs * (1 - weight);
    }
    this.updatedAt = now;
  }
}

export interface Candidate {
  readonly load: EndpointLoad;
  readonly picker: Picker;
}

/**
 * Power of two choices: two distinct candidates drawn at random, the lower cost wins (the first
 * drawn on a tie). `random` returns a number in [0, 1).
 */
export function chooseOfTwo<T extends { readonly load: EndpointLoad }>(candidates: readonly T[], now: number, random: () => number = Math.random): T {
  if (candidates.length === 0) throw new Error("chooseOfTwo: no candidates");
  if (candidates.length === 1) return candidates[0]!;
  const first = Math.floor(random() * candidates.length);
  let second = Math.floor(random() * (candidates.length - 1));
  if (second >= first) second++;
  const a = candidates[first]!;
  const b = candidates[second]!;
  return b.load.cost(now) < a.load.cost(now) ? b : a;
}

/** Monotonic milliseconds. */
const clock = (): number => performance.now();

class P2cEwmaPicker implements Picker {
  constructor(private readonly candidates: readonly Candidate[]) {}

  pick(pickArgs: PickArgs): PickResult {
    const chosen = chooseOfTwo(this.candidates, clock());
    const result = chosen.picker.pick(pickArgs);
    if (result.pickResultType !== experimental.PickResultType.COMPLETE) return result;
    const load = chosen.load;
    load.picks++;
    let startedAt: number | undefined;
    const childStarted = result.onCallStarted;
    const childEnded = result.onCallEnded;
    return {
      ...result,
      onCallStarted: () => {
        startedAt = clock();
        load.outstanding++;
        childStarted?.();
      },
      onCallEnded: (code, details, metadata) => {
        if (startedAt !== undefined) {
          load.outstanding = Math.max(0, load.outstanding - 1);
          const now = clock();
          load.observe(now - startedAt, now);
          startedAt = undefined;
        }
        childEnded?.(code, details, metadata);
      },
    };
  }
}

/** The balancer: one leaf (pick_first of one instance) per instance, all kept connected. */
export class P2cEwmaLoadBalancer implements experimental.LoadBalancer {
  private children: { key: string; leaf: LeafLoadBalancer }[] = [];
  private readonly loads = new Map<string, EndpointLoad>();
  private settings: P2cEwmaSettings = { decayMs: DEFAULT_DECAY_MS, defaultRttMs: DEFAULT_RTT_MS, latency: true };
  private readonly childHelper: ChannelControlHelper;
  private state = ConnectivityState.IDLE;
  private updatesPaused = false;
  private lastError: string | null = null;

  constructor(private readonly helper: ChannelControlHelper) {
    this.childHelper = experimental.createChildChannelControlHelper(helper, {
      updateState: (childState, _picker, errorMessage) => {
        // Re-resolve once connections are lost, as round_robin does.
        if (this.state === ConnectivityState.READY && childState !== ConnectivityState.READY) {
          this.helper.requestReresolution();
        }
        if (errorMessage) this.lastError = errorMessage;
        this.updateState();
      },
    });
  }

  /** The load record of an instance (tests and diagnostics). */
  loadOf(address: string): EndpointLoad | undefined {
    return this.loads.get(address);
  }

  private updateState(): void {
    if (this.updatesPaused) return;
    const ready = this.children.filter((child) => child.leaf.getConnectivityState() === ConnectivityState.READY);
    if (ready.length > 0) {
      const candidates = ready.map((child) => ({ load: this.loads.get(child.key)!, picker: child.leaf.getPicker() }));
      this.publish(ConnectivityState.READY, new P2cEwmaPicker(candidates), null);
    } else if (this.children.some((child) => child.leaf.getConnectivityState() === ConnectivityState.CONNECTING)) {
      this.publish(ConnectivityState.CONNECTING, new experimental.QueuePicker(this), null);
    } else if (this.children.some((child) => child.leaf.getConnectivityState() === ConnectivityState.TRANSIENT_FAILURE)) {
      const message = `${P2C_EWMA_POLICY}: no connection established. Last error: ${this.lastError}`;
      this.publish(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details: message }), message);
    } else {
      this.publish(ConnectivityState.IDLE, new experimental.QueuePicker(this), null);
    }
    // Every instance stays connected, so that a pick always has two to choose from.
    for (const child of this.children) {
      if (child.leaf.getConnectivityState() === ConnectivityState.IDLE) child.leaf.exitIdle();
    }
  }

  private publish(state: ConnectivityState, picker: Picker, errorMessage: string | null): void {
    this.state = state;
    this.helper.updateState(state, picker, errorMessage);
  }

  updateAddressList(
    endpoints: experimental.StatusOr<Endpoint[]>,
    config: TypedLoadBalancingConfig,
    options: ChannelOptions,
    resolutionNote: string,
  ): boolean {
    if (!(config instanceof P2cEwmaConfig)) return false;
    if (!endpoints.ok) {
      if (this.children.length === 0) {
        this.publish(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker(endpoints.error), endpoints.error.details);
      }
      return true;
    }
    if (JSON.stringify(config.settings) !== JSON.stringify(this.settings)) this.loads.clear();
    this.settings = config.settings;
    for (const child of this.children) child.leaf.destroy();
    this.children = [];
    if (endpoints.value.length === 0) {
      const message = `No addresses resolved. Resolution note: ${resolutionNote}`;
      this.publish(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details: message }), message);
    }
    const now = clock();
    const keys = new Set<string>();
    this.updatesPaused = true;
    for (const endpoint of endpoints.value) {
      const key = experimental.endpointToString(endpoint);
      keys.add(key);
      // An instance kept across updates keeps what was learnt of it.
      if (!this.loads.has(key)) this.loads.set(key, new EndpointLoad(this.settings, now));
      this.children.push({ key, leaf: new experimental.LeafLoadBalancer(endpoint, this.childHelper, options, resolutionNote) });
    }
    for (const key of [...this.loads.keys()]) if (!keys.has(key)) this.loads.delete(key);
    for (const child of this.children) child.leaf.startConnecting();
    this.updatesPaused = false;
    this.updateState();
    return true;
  }

  exitIdle(): void {
    // Like round_robin: idle only without addresses; every child is kept connected already.
  }

  resetBackoff(): void {}

  destroy(): void {
    for (const child of this.children) child.leaf.destroy();
    this.children = [];
  }

  getTypeName(): string {
    return P2C_EWMA_POLICY;
  }
}

let registered = false;

/** Registers `p2c_ewma` with grpc-js (once per process); service configs may then name it. */
export function registerP2cEwma(): void {
  if (registered || experimental.isLoadBalancerNameRegistered(P2C_EWMA_POLICY)) {
    registered = true;
    return;
  }
  experimental.registerLoadBalancerType(P2C_EWMA_POLICY, P2cEwmaLoadBalancer, P2cEwmaConfig);
  registered = true;
}
