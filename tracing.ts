import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';

/**
 * The seams' side of tracing, on the OpenTelemetry API alone: every layer (the edge, the actors, the
 * journal, the bank client, the simulator) starts its spans through these few functions. While no
 * tracer is set (tracing-export.ts sets one when an endpoint is configured) each of them returns at
 * once: no span object, no context captured, no header written — tracing off costs a boolean test.
 */

/** The attributes our spans carry, by name (OpenTelemetry's semantic conventions where one exists). */
export const ATTRIBUTES = {
  method: 'http.request.method',
  path: 'url.path',
  route: 'http.route',
  status: 'http.response.status_code',
  request_id: 'gateway.request_id',
  transaction_id: 'payment.transaction_id',
  /** A user's id as it is: a random UUID that names no one (never their name or email). */
  user_id: 'user.id',
  shard: 'gateway.shard',
  instance: 'gateway.instance_id',
  command: 'gateway.command',
  commands: 'gateway.account.commands',
  appends: 'gateway.journal.appends',
  outcome: 'gateway.outcome',
  webhook_id: 'webhook.id',
} as const;

let tracer: Tracer | undefined;

/** Sets (or, with undefined, clears) the tracer every seam uses: tracing-export.ts's start and stop. */
export function useTracer(next: Tracer | undefined): void {
  tracer = next;
}

/** Whether spans are recorded in this process. */
export function tracingOn(): boolean {
  return tracer !== undefined;
}

/** The context that is current here (captured where work is queued, to continue it where it runs). */
export function currentContext(): Context | undefined {
  return tracer ? context.active() : undefined;
}

/** Starts a span under `parent` (default: the current context); undefined while tracing is off. */
export function startSpan(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; links?: Link[] },
  parent?: Context,
): Span | undefined {
  if (!tracer) return undefined;
  return tracer.startSpan(name, options, parent ?? context.active());
}

/** Runs `work` with `span` current (under `parent`, default: the current context); as is without a span. */
export function withSpan<T>(span: Span | undefined, work: () => T, parent?: Context): T {
  if (!span) return work();
  return context.with(trace.setSpan(parent ?? context.active(), span), work);
}

/** Runs `work` in a captured context (a queued request's); as is while tracing is off or nothing was captured. */
export function inContext<T>(captured: Context | undefined, work: () => T): T {
  if (!tracer) return work();
  return context.with(captured ?? ROOT_CONTEXT, work);
}

/** Ends `span`, marking it an error when `failed` says so (a 5xx, a failure of the call). */
export function endSpan(span: Span | undefined, failed = false, attributes?: Attributes): void {
  if (!span) return;
  if (attributes) span.setAttributes(attributes);
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** Writes the current context's `traceparent` (and `tracestate`) into outgoing headers, when tracing is on. */
export function injectContext(headers: Record<string, string>, from?: Context): Record<string, string> {
  if (tracer) propagation.inject(from ?? context.active(), headers);
  return headers;
}

/** The context an incoming request's headers (or a signed command's carrier) continue; the root when none. */
export function extractContext(carrier: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** A link to the span current in each captured context, for a span that serves many (a batch). */
export function linksTo(captured: readonly (Context | undefined)[]): Link[] {
  const links: Link[] = [];
  for (const each of captured) {
    const span = each && trace.getSpanContext(each);
    if (span) links.push({ context: span });
  }
  return links;
}

export { SpanKind };
