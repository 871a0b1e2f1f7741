import type { Span } from '@opentelemetry/api';
import type { Context, Middleware } from 'koa';
import { ATTRIBUTES as A, endSpan, extractContext, SpanKind, startSpan, tracingOn, withSpan } from '../tracing.ts';

export interface ServerSpanOptions {
  /** This instance's id, on every span (the gateway's INSTANCE_ID; none for the bank). */
  instance?: string;
  /** The shard of a user's account, for the span of a request a user made. */
  shardOf?: (user_id: string) => number;
  /** Paths whose handler opens the server span itself (a forwarded command: its context is in the signed body). */
  skip?: readonly string[];
}

/**
 * A server span per request, continuing the caller's W3C `traceparent` when it sent one (another
 * service, the bank's callback, a client that traces), named by method and route pattern. The span
 * is current while the request runs, so that every span below it (forwarding, the actor's turn, the
 * journal's commit) is its descendant. Off, the request goes straight through.
 */
export function serverSpans(options: ServerSpanOptions = {}): Middleware {
  return async (ctx, next) => {
    if (!tracingOn() || options.skip?.includes(ctx.path)) {
      await next();
      return;
    }
    const parent = extractContext(ctx.headers);
    const span = startSpan(
      ctx.method,
      { kind: SpanKind.SERVER, attributes: { [A.method]: ctx.method, [A.path]: ctx.path } },
      parent,
    );
    try {
      await withSpan(span, next, parent);
    } finally {
      endServerSpan(span, ctx, options);
    }
  };
}

/** Names the span by its route and records what the request came to: status, ids, caller, shard, instance. */
export function endServerSpan(span: Span | undefined, ctx: Context, options: ServerSpanOptions, status = ctx.status) {
  if (!span) return;
  const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof route === 'string') {
    span.updateName(`${ctx.method} ${route}`);
    span.setAttribute(A.route, route);
  }
  span.setAttribute(A.status, status);
  if (ctx.state.requestId) span.setAttribute(A.request_id, ctx.state.requestId);
  if (ctx.state.transactionId) span.setAttribute(A.transaction_id, ctx.state.transactionId);
  if (options.instance) span.setAttribute(A.instance, options.instance);
  const caller = ctx.state.caller;
  if (caller?.kind === 'user') {
    span.setAttribute(A.user_id, caller.id);
    if (options.shardOf) span.setAttribute(A.shard, options.shardOf(caller.id));
  }
  endSpan(span, status >= 500);
}
