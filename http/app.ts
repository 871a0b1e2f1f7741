import Koa, { type Middleware } from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logger.ts';
import { ApiError, errorBody, errors } from './errors.ts';
import { requestId } from './request-id.ts';
import './state.ts';

/** Logs one line per request and turns every error into the contract's shape. */
function errorsAndAccessLog(log: Logger): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    let failure: unknown;
    try {
      await next();
      if (ctx.body === undefined || ctx.body === null) {
        if (ctx.status === 404) throw errors.routeNotFound();
        if (ctx.status === 405) throw errors.methodNotAllowed(ctx.response.get('Allow'));
        if (ctx.status === 501) throw errors.methodNotAllowed('GET, POST');
      }
    } catch (caught) {
      failure = caught;
      const error = toApiError(caught);
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.body = errorBody(error, ctx.state.requestId);
    }
    const latency_ms = Number(process.hrtime.bigint() - started) / 1e6;
    const line = {
      request_id: ctx.state.requestId,
      method: ctx.method,
      path: ctx.path,
      status: ctx.status,
      latency_ms: Math.round(latency_ms * 100) / 100,
      caller: ctx.state.caller?.id,
    };
    if (ctx.status >= 500) log.error({ ...line, err: failure }, 'request failed');
    else log.info(line, 'request');
  };
}

/** Maps anything thrown to an ApiError; only ApiErrors and Koa's own client errors expose a message. */
export function toApiError(caught: unknown): ApiError {
  if (caught instanceof ApiError) return caught;
  const status = (caught as { status?: unknown }).status;
  if (typeof status === 'number' && status === 413) return new ApiError(413, 'payload_too_large', 'Too large.');
  if (typeof status === 'number' && status >= 400 && status < 500 && (caught as { expose?: boolean }).expose) {
    return new ApiError(status, 'bad_request', (caught as Error).message);
  }
  return errors.internal();
}

/** The Koa application: request id → access log and errors → edge middleware → routers. */
export function createApp(options: { log: Logger; middleware: Middleware[]; routers: Router[] }): Koa {
  const app = new Koa({ proxy: false });
  app.silent = true;
  app.use(requestId());
  app.use(errorsAndAccessLog(options.log));
  for (const middleware of options.middleware) app.use(middleware);
  const root = new Router();
  for (const router of options.routers) root.use(router.routes());
  app.use(root.routes());
  app.use(root.allowedMethods());
  return app;
}
