/**
 * The process-wide tracing state the span helpers (trace-grpc.ts, trace-nats.ts) read: whether
 * tracing is on, which tracer serves which service, and which service the active context works
 * for. tracing.ts fills it in; the helpers depend only on @opentelemetry/api and this module, so
 * importing them does not load the SDK.
 *
 * Several services may run in one process (the tests run the whole platform in one), so every
 * span is made by the tracer of the service it belongs to: the service named by the caller, else
 * the one recorded in the active context (by the enclosing server or consumer span, or by
 * withService()), else the process's default service (the first one given to initTracing()).
 */
import { context, createContextKey, type Context, type Tracer } from "@opentelemetry/api";

/** Where tracers come from while tracing is on. */
export interface TracerSource {
  /** The service spans belong to when nothing names one. */
  readonly defaultService: string;
  /** The tracer of `service`; the same tracer on every call for one service. */
  tracerFor(service: string): Tracer;
}

/** Undefined while tracing is off: the span helpers then only run what they wrap. */
let source: TracerSource | undefined;

/** Installs (or, with undefined, removes) the tracer source. Called by tracing.ts only. */
export function setTracerSource(next: TracerSource | undefined): void {
  source = next;
}

/** True when spans are recorded and exported. */
export function isTracingOn(): boolean {
  return source !== undefined;
}

const SERVICE_KEY = createContextKey("dronedelivery.observability.service");

/** The service name recorded in `ctx`, if any. */
export function serviceOf(ctx: Context): string | undefined {
  const value = ctx.getValue(SERVICE_KEY);
  return typeof value === "string" ? value : undefined;
}

/** `ctx` with `service` recorded as the service its work belongs to. */
export function contextForService(ctx: Context, service: string): Context {
  return ctx.setValue(SERVICE_KEY, service);
}

/**
 * Runs `fn` as work of `service`: spans started inside it (and after its awaits) that name no
 * service belong to `service`. For background work (timers, loops) of a service that shares its
 * process with others; server and consumer spans record their service themselves.
 */
export function withService<T>(service: string, fn: () => T): T {
  return context.with(contextForService(context.active(), service), fn);
}

/** The tracer and service a new span in `ctx` uses; undefined while tracing is off. */
export function tracerIn(ctx: Context, service: string | undefined): { tracer: Tracer; service: string } | undefined {
  const current = source;
  if (current === undefined) {
    return undefined;
  }
  const name = service ?? serviceOf(ctx) ?? current.defaultService;
  return { tracer: current.tracerFor(name), service: name };
}
