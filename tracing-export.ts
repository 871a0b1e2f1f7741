import { AsyncLocalStorage } from 'node:async_hooks';
import {
  context,
  diag,
  DiagLogLevel,
  propagation,
  ROOT_CONTEXT,
  trace,
  type Context,
  type ContextManager,
} from '@opentelemetry/api';
import { setGlobalErrorHandler, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from './config.ts';
import type { Logger } from './logger.ts';
import { useTracer } from './tracing.ts';

/** The exporter's bounds: a bounded queue (spans past it are dropped, never a request slowed), batched sends. */
export const TRACING_LIMITS = {
  /** Finished spans waiting for export at most; past it new ones are dropped. */
  queue_spans_max: 2048,
  /** Spans per OTLP request at most. */
  batch_spans_max: 512,
  /** How long finished spans wait for a fuller batch. */
  batch_delay_ms: 2000,
  /** One export's time limit. */
  export_timeout_ms: 10_000,
  /** At most one warning per this long about failed exports, with the count of those not logged. */
  warn_every_ms: 60_000,
} as const;

/** What a process holds of its tracing: whether it is on, and how to send what is buffered. */
export interface Tracing {
  readonly enabled: boolean;
  /** The traces URL spans are sent to, when on. */
  readonly url: string | undefined;
  /** Sends every finished span now (a failure is logged, never thrown). */
  flush(): Promise<void>;
  /** Flushes, stops the exporter and puts the no-op API back. */
  shutdown(): Promise<void>;
}

/** Where traces go: the traces URL as given, else `<base>/v1/traces`; undefined when neither is set (off). */
export function tracesUrl(config: TracingConfig): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
}

/** The sampler OTEL_TRACES_SAMPLER (and its ARG) name, as the specification defines them. */
export function samplerOf(config: TracingConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.OTEL_TRACES_SAMPLER_ARG);
  switch (config.OTEL_TRACES_SAMPLER) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * The current context follows the async calls of a request (AsyncLocalStorage), so that a span
 * started anywhere below the edge finds its parent without passing it through every signature. Only
 * installed while tracing is on: off, the API's no-op manager costs nothing.
 */
class AsyncContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    given: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(given, () => fn.apply(thisArg, args));
  }
  bind<T>(given: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const run = (...args: unknown[]) => this.with(given, () => (target as (...a: unknown[]) => unknown)(...args));
    return run as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

/** A warning at most every `every_ms`, saying how many were held back meanwhile. */
function rateLimitedWarn(log: Logger, every_ms: number) {
  let last_ms = -Infinity;
  let held = 0;
  return (fields: Record<string, unknown>, message: string) => {
    const now_ms = performance.now();
    if (now_ms - last_ms < every_ms) {
      held += 1;
      return;
    }
    log.warn({ ...fields, ...(held > 0 ? { not_logged: held } : {}) }, message);
    last_ms = now_ms;
    held = 0;
  };
}

const OFF: Tracing = { enabled: false, url: undefined, flush: async () => {}, shutdown: async () => {} };

/**
 * Starts tracing for this process when an OTLP endpoint is configured: a tracer provider with a
 * bounded batch processor and the OTLP/HTTP exporter (JSON, the package's default), the W3C trace
 * context propagator and the async context manager. With no endpoint nothing is started and the
 * seams stay on the API's no-op. An export that fails never reaches a request: it is logged at warn,
 * at most once a minute.
 */
export function startTracing(config: TracingConfig, log: Logger): Tracing {
  const url = tracesUrl(config);
  if (!url) return OFF;
  const warn = rateLimitedWarn(log.child({ module: 'tracing' }), TRACING_LIMITS.warn_every_ms);
  setGlobalErrorHandler((error) => warn({ err: error, url }, 'trace export failed; spans dropped'));
  diag.setLogger(
    {
      error: (message) => warn({ url, detail: message }, 'trace export failed; spans dropped'),
      warn: (message) => warn({ url, detail: message }, 'tracing warning'),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const exporter = new OTLPTraceExporter({ url, timeoutMillis: TRACING_LIMITS.export_timeout_ms });
  const processor = new BatchSpanProcessor(exporter, {
    maxQueueSize: TRACING_LIMITS.queue_spans_max,
    maxExportBatchSize: TRACING_LIMITS.batch_spans_max,
    scheduledDelayMillis: TRACING_LIMITS.batch_delay_ms,
    exportTimeoutMillis: TRACING_LIMITS.export_timeout_ms,
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.OTEL_SERVICE_NAME }),
    sampler: samplerOf(config),
    spanProcessors: [processor],
  });
  const contextManager = new AsyncContextManager();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  useTracer(provider.getTracer('payment-gateway'));
  log.info({ url, service: config.OTEL_SERVICE_NAME, sampler: config.OTEL_TRACES_SAMPLER }, 'tracing on');

  const flush = () =>
    provider.forceFlush().catch((error: unknown) => warn({ err: error, url }, 'trace export failed; spans dropped'));
  return {
    enabled: true,
    url,
    flush,
    async shutdown() {
      useTracer(undefined);
      await flush();
      await provider.shutdown().catch(() => {});
      trace.disable();
      propagation.disable();
      context.disable();
      diag.disable();
    },
  };
}
