/**
 * OpenTelemetry tracing for the platform's services: one span pipeline per process, exporting
 * where the standard environment says (trace-config.ts), and one tracer provider per service so
 * each span carries its own service's resource (`service.name`) even when several services share
 * a process, as they do in the tests.
 *
 *   initTracing("scheduler")        at start-up; tracing stays off unless the env asks for it
 *   useInMemoryTracing()            in tests: keeps every finished span in memory
 *   shutdownTracing()               at exit: flushes what is queued
 *
 * The span helpers live in trace-grpc.ts, trace-nats.ts and trace-ids.ts (they need only the
 * OpenTelemetry API); see TRACING.md.
 */
import { randomUUID } from "node:crypto";
import { context, propagation, trace, type Context, type Tracer } from "@opentelemetry/api";
import { createRequire } from "node:module";
import type { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import type { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import type {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  InMemorySpanExporter,
  NodeTracerProvider,
  SimpleSpanProcessor,
  ReadableSpan,
  Span,
  SpanExporter,
  SpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { tracingConfigFromEnv, type ExporterSpec, type TracingEnv } from "./trace-config.js";
import { setTracerSource, type TracerSource } from "./trace-runtime.js";

export { withService } from "./trace-runtime.js";

// The SDK is loaded when tracing starts: a process with tracing off (the default) never loads it
// (it costs each process a few MB).
const requireHere = createRequire(import.meta.url);
interface Sdk {
  W3CTraceContextPropagator: typeof W3CTraceContextPropagator;
  OTLPTraceExporter: typeof OTLPTraceExporter;
  defaultResource: typeof defaultResource;
  resourceFromAttributes: typeof resourceFromAttributes;
  BatchSpanProcessor: typeof BatchSpanProcessor;
  ConsoleSpanExporter: typeof ConsoleSpanExporter;
  InMemorySpanExporter: typeof InMemorySpanExporter;
  NodeTracerProvider: typeof NodeTracerProvider;
  SimpleSpanProcessor: typeof SimpleSpanProcessor;
}
let loadedSdk: Sdk | undefined;
function sdk(): Sdk {
  return (loadedSdk ??= {
    ...(requireHere("@opentelemetry/core") as typeof import("@opentelemetry/core")),
    ...(requireHere("@opentelemetry/exporter-trace-otlp-http") as typeof import("@opentelemetry/exporter-trace-otlp-http")),
    ...(requireHere("@opentelemetry/resources") as typeof import("@opentelemetry/resources")),
    ...(requireHere("@opentelemetry/sdk-trace-node") as typeof import("@opentelemetry/sdk-trace-node")),
  });
}
export type { ReadableSpan, SpanExporter };

/** Instrumentation scope of every span the platform makes. */
export const TRACER_NAME = "dronedelivery";
/** The service name spans get when no initTracing() named one. */
export const UNKNOWN_SERVICE = "unknown_service:node";

const ATTR_SERVICE_NAMESPACE = "service.namespace";
const ATTR_SERVICE_INSTANCE_ID = "service.instance.id";
const SERVICE_NAMESPACE = "dronedelivery";

export interface InitTracingOptions {
  /** Export to this exporter instead of what the environment says. */
  exporter?: SpanExporter;
  /** Environment to read the OTEL_* settings from. Default: process.env. */
  env?: TracingEnv;
}

export interface TracingStatus {
  /** True when spans are recorded and exported. */
  readonly enabled: boolean;
  /** What spans are exported to, e.g. `otlp http://collector:4318/v1/traces`. */
  readonly exporters: readonly string[];
  /** Settings that were ignored, for the caller to log. */
  readonly warnings: readonly string[];
}

/** Spans kept in memory, for tests. */
export interface InMemoryTracing {
  readonly exporter: InMemorySpanExporter;
  /** Every span finished since the start (or the last reset), in the order they ended. */
  spans(): ReadableSpan[];
  /** Forgets the spans kept so far. */
  reset(): void;
}

/** Fans spans out to every exporter's processor; the one processor every provider shares. */
class SpanPipeline implements SpanProcessor {
  private readonly processors: SpanProcessor[] = [];
  private readonly exporters = new Set<SpanExporter>();
  readonly labels: string[] = [];

  add(exporter: SpanExporter, processor: SpanProcessor, label: string): void {
    if (this.exporters.has(exporter)) {
      return;
    }
    this.exporters.add(exporter);
    this.processors.push(processor);
    this.labels.push(label);
  }

  onStart(span: Span, parentContext: Context): void {
    for (const processor of this.processors) processor.onStart(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    for (const processor of this.processors) processor.onEnd(span);
  }

  async forceFlush(): Promise<void> {
    await Promise.all(this.processors.map((processor) => processor.forceFlush()));
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled(this.processors.map((processor) => processor.shutdown()));
  }
}

/** The pipeline as one provider sees it: the provider may flush it, not shut it down. */
class SharedPipeline implements SpanProcessor {
  constructor(private readonly pipeline: SpanPipeline) {}
  onStart(span: Span, parentContext: Context): void {
    this.pipeline.onStart(span, parentContext);
  }
  onEnd(span: ReadableSpan): void {
    this.pipeline.onEnd(span);
  }
  forceFlush(): Promise<void> {
    return this.pipeline.forceFlush();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Tracing while it is on: the pipeline, and a provider and tracer per service. */
class TracingRuntime implements TracerSource {
  readonly pipeline = new SpanPipeline();
  private readonly tracers = new Map<string, Tracer>();
  private registered = false;

  constructor(
    private readonly resourceAttributes: Readonly<Record<string, string>>,
    private readonly instanceId: string,
  ) {}

  get defaultService(): string {
    return defaultServiceName ?? UNKNOWN_SERVICE;
  }

  tracerFor(service: string): Tracer {
    let tracer = this.tracers.get(service);
    if (tracer === undefined) {
      const { NodeTracerProvider, defaultResource, resourceFromAttributes, W3CTraceContextPropagator } = sdk();
      const provider = new NodeTracerProvider({
        resource: defaultResource().merge(
          resourceFromAttributes({
            [ATTR_SERVICE_NAMESPACE]: SERVICE_NAMESPACE,
            [ATTR_SERVICE_INSTANCE_ID]: this.instanceId,
            ...this.resourceAttributes,
            [ATTR_SERVICE_NAME]: service,
          }),
        ),
        spanProcessors: [new SharedPipeline(this.pipeline)],
      });
      if (!this.registered) {
        // The first provider becomes the global one; registering also installs the
        // AsyncLocalStorage context manager that carries the active span across awaits.
        this.registered = true;
        provider.register({ propagator: new W3CTraceContextPropagator() });
      }
      tracer = provider.getTracer(TRACER_NAME);
      this.tracers.set(service, tracer);
    }
    return tracer;
  }
}

let runtime: TracingRuntime | undefined;
let defaultServiceName: string | undefined;
const processInstanceId = randomUUID();

/** Starts tracing: registers the global provider and the context manager. */
function activate(resourceAttributes: Readonly<Record<string, string>>): TracingRuntime {
  const started = new TracingRuntime(resourceAttributes, processInstanceId);
  started.tracerFor(started.defaultService); // registers the globals at once
  runtime = started;
  setTracerSource(started);
  return started;
}

function addExporter(target: TracingRuntime, exporter: SpanExporter): void {
  const { InMemorySpanExporter, SimpleSpanProcessor, BatchSpanProcessor } = sdk();
  const inMemory = exporter instanceof InMemorySpanExporter;
  const processor = inMemory ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  target.pipeline.add(exporter, processor, inMemory ? "memory" : exporter.constructor.name);
}

function exporterFrom(spec: ExporterSpec): { exporter: SpanExporter; processor: SpanProcessor; label: string } {
  const { ConsoleSpanExporter, SimpleSpanProcessor, OTLPTraceExporter, BatchSpanProcessor } = sdk();
  if (spec.kind === "console") {
    const exporter = new ConsoleSpanExporter();
    return { exporter, processor: new SimpleSpanProcessor(exporter), label: "console" };
  }
  const exporter = new OTLPTraceExporter({ url: spec.url, headers: { ...spec.headers } });
  return { exporter, processor: new BatchSpanProcessor(exporter), label: `otlp ${spec.url}` };
}

/**
 * Sets up tracing for `serviceName`; safe to call more than once, and for several services in one
 * process. The first call that finds something to export (an `exporter`, or the environment
 * asking for one) registers the global provider and the span pipeline; later calls only add their
 * service (and their `exporter`, if any) and do not read the environment again. The first service
 * named becomes the process default, used by spans that name no service. Never throws.
 */
export function initTracing(serviceName: string, options: InitTracingOptions = {}): TracingStatus {
  const name = serviceName.trim() === "" ? UNKNOWN_SERVICE : serviceName;
  defaultServiceName ??= name;
  const warnings: string[] = [];
  try {
    let current = runtime;
    if (current === undefined) {
      const config = tracingConfigFromEnv(options.env ?? process.env);
      warnings.push(...config.warnings);
      if (options.exporter === undefined && config.exporters.length === 0) {
        return { enabled: false, exporters: [], warnings };
      }
      current = activate(config.resourceAttributes);
      if (options.exporter === undefined) {
        for (const spec of config.exporters) {
          const { exporter, processor, label } = exporterFrom(spec);
          current.pipeline.add(exporter, processor, label);
        }
      }
    }
    if (options.exporter !== undefined) {
      addExporter(current, options.exporter);
    }
    current.tracerFor(name);
    return { enabled: true, exporters: [...current.pipeline.labels], warnings };
  } catch (error) {
    warnings.push(`tracing could not start: ${error instanceof Error ? error.message : String(error)}`);
    return { enabled: runtime !== undefined, exporters: runtime ? [...runtime.pipeline.labels] : [], warnings };
  }
}

/**
 * Exports what is queued, shuts the exporters down and unregisters the global provider, context
 * manager and propagator; tracing is off afterwards (initTracing may start it again). Never
 * rejects.
 */
export async function shutdownTracing(): Promise<void> {
  const current = runtime;
  runtime = undefined;
  defaultServiceName = undefined;
  setTracerSource(undefined);
  if (current === undefined) {
    return;
  }
  try {
    await current.pipeline.forceFlush();
  } catch {
    // An exporter that cannot flush loses its queue; shutting down goes on.
  }
  await current.pipeline.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
}

/**
 * Keeps every finished span in memory (in addition to any other exporter), turning tracing on if
 * it was off. For tests: call it before the code under test starts spans, and shutdownTracing()
 * at the end.
 */
export function useInMemoryTracing(): InMemoryTracing {
  const current = runtime ?? activate({});
  const exporter = new (sdk().InMemorySpanExporter)();
  addExporter(current, exporter);
  return {
    exporter,
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
  };
}
