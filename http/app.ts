import Koa, { type Context, type Middleware } from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logger.ts';
import type { RequestObservation } from '../metrics.ts';
import { isStorageFault } from '../persistence/faults.ts';
import { ApiError, errorBody, errors } from './errors.ts';
import { requestId } from './request-id.ts';
import { serverSpans, type ServerSpanOptions } from './server-spans.ts';
import './state.ts';

/** nginx's status for a request whose client went away before the answer; never sent (nobody listens). */
const CLIENT_CLOSED = 499;

/** How an error's body is written for a request: the contract's shape, or another API's (GraphQL). */
export type RenderError = (ctx: Context, error: ApiError) => unknown;

const contractBody: RenderError = (ctx, error) => errorBody(error, ctx.state.requestId);

/** Logs one line per request, tells `observe` of it, and turns every error into the contract's shape. */
function errorsAndAccessLog(
  log: Logger,
  routeOf: (ctx: Context) => string,
  deadline_ms: number | undefined,
  draining: () => boolean,
  observe?: (request: RequestObservation) => void,
  render: RenderError = contractBody,
): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    let failure: unknown;
    try {
      // Stopping: new work goes elsewhere (the balancer retries on 503), work in flight finishes.
      if (draining()) throw errors.shuttingDown();
      if (deadline_ms === undefined) await next();
      else await withinDeadline(ctx, next(), deadline_ms);
      if (ctx.body === undefined || ctx.body === null) {
        if (ctx.status === 404) throw errors.notFound({ what: 'route' });
        if (ctx.status === 405) throw errors.methodNotAllowed({ allowed: ctx.response.get('Allow') });
        if (ctx.status === 501) throw errors.methodNotAllowed({ allowed: 'GET, POST' });
      }
    } catch (caught) {
      failure = caught;
      const error = toApiError(caught);
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.body = render(ctx, error);
    }
    // Once stopping, no connection is kept alive past its answer, so the server can close soon.
    if (draining()) ctx.set('Connection', 'close');
    // The client hung up before its answer (e.g. in the middle of its body): not a server error.
    if (ctx.status >= 500 && (!ctx.res.socket || ctx.res.socket.destroyed)) ctx.status = CLIENT_CLOSED;
    const latency_ms = Number(process.hrtime.bigint() - started) / 1e6;
    const route = routeOf(ctx);
    observe?.({ method: ctx.method, route, status: ctx.status, latency_ms });
    const line = {
      request_id: ctx.state.requestId,
      method: ctx.method,
      path: ctx.path,
      route,
      status: ctx.status,
      latency_ms: Math.round(latency_ms * 100) / 100,
      caller: ctx.state.caller?.id,
      transaction_id: ctx.state.transactionId,
    };
    // A 5xx the code chose to answer (an ApiError: a dependency down, the simulated bank's timeout) is an
    // operating condition, at warn; only the unexpected (a bug's 500) is an error, for a human to look at.
    if (ctx.status === CLIENT_CLOSED) log.info({ ...line, err: failure }, 'client closed the request');
    else if (ctx.status === 503) log.warn({ ...line, err: failure }, 'request refused: a dependency is unavailable');
    else if (ctx.status >= 500 && failure instanceof ApiError)
      log.warn({ ...line, err: failure }, 'request ended in an expected failure');
    else if (ctx.status >= 500) log.error({ ...line, err: failure }, 'request failed');
    else log.info(line, 'request');
  };
}

/**
 * Every request ends within `deadline_ms`, whatever a dependency does (a frozen link answers nothing,
 * and neither driver has a deadline of its own): a body still arriving is the client's delay (408); a
 * write already handed to the actor or its owner has an unknown outcome; anything else waited on
 * storage. The work left running settles later and is ignored (its promise is still observed here).
 */
async function withinDeadline(ctx: Context, work: Promise<unknown>, deadline_ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (!ctx.req.complete) reject(errors.requestTimeout());
      else reject(ctx.state.writeSent ? errors.outcomeUnknown() : errors.storageUnavailable());
    }, deadline_ms);
  });
  try {
    await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Maps anything thrown to an ApiError; only ApiErrors and a library's exposed client errors show a
 * message. None of this stack's libraries raises one today (bodies are read by `body.ts`, whose 413
 * names the limit): should one appear, it is a 400 `bad_request` with the library's words.
 */
export function toApiError(caught: unknown): ApiError {
  if (caught instanceof ApiError) return caught;
  // Postgres or Redis unreachable, refusing, or cut mid-query: the contract's 503, never a 500.
  if (isStorageFault(caught)) return errors.storageUnavailable();
  const status = (caught as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500 && (caught as { expose?: boolean }).expose) {
    return errors.badRequest({ reason: (caught as Error).message });
  }
  return errors.internalError();
}

/**
 * The route pattern a request was for (`/api/v1/deposits/:id`, never the raw path, whose ids would
 * make every request a label of its own). A request refused before the router ran (401, 429) is
 * matched here against the routes, so it counts under the route it tried.
 */
function routeOfRequest(root: Router): (ctx: Context) => string {
  return (ctx) => {
    const matched = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
    if (typeof matched === 'string') return matched;
    const layer = root.match(ctx.path, ctx.method).pathAndMethod.findLast((route) => route.methods.length > 0);
    return typeof layer?.path === 'string' ? layer.path : 'unmatched';
  };
}

/** The Koa application: server span → request id → access log and errors → edge middleware → routers. */
export function createApp(options: {
  log: Logger;
  middleware: Middleware[];
  routers: Router[];
  /** Told of every answered request (metrics). */
  observe?: (request: RequestObservation) => void;
  /** Every request is answered within this long (the gateway: REQUEST_DEADLINE_MS); none when absent. */
  deadline_ms?: number;
  /** True once the server is stopping: new requests get 503 shutting_down, every answer closes its connection. */
  draining?: () => boolean;
  /** The body of an error answer; the contract's `{error, message, details?, request_id}` when absent. */
  renderError?: RenderError;
  /** What the request's server span carries beyond the request itself (tracing on only). */
  tracing?: ServerSpanOptions;
}): Koa {
  const app = new Koa({ proxy: false });
  const root = new Router();
  for (const router of options.routers) root.use(router.routes());
  app.silent = true;
  // Outermost, so that the span holds the final status the access log reports.
  app.use(serverSpans(options.tracing));
  app.use(requestId());
  const draining = options.draining ?? (() => false);
  app.use(
    errorsAndAccessLog(
      options.log,
      routeOfRequest(root),
      options.deadline_ms,
      draining,
      options.observe,
      options.renderError,
    ),
  );
  for (const middleware of options.middleware) app.use(middleware);
  app.use(root.routes());
  app.use(root.allowedMethods());
  return app;
}
