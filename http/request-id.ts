import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';

// A client's id is kept when it is a plain token of sane length, so that it cannot inject log lines.
const CLIENT_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** The request's id: the client's X-Request-ID when it sent a valid one, else a new UUID. */
export function requestIdFrom(sent: string | string[] | undefined): string {
  return typeof sent === 'string' && CLIENT_ID.test(sent) ? sent : randomUUID();
}

/** Gives every request an id (see `requestIdFrom`) and sends it back in X-Request-ID. */
export function requestId(): Middleware {
  return async (ctx, next) => {
    ctx.state.requestId = requestIdFrom(ctx.get('X-Request-ID'));
    ctx.set('X-Request-ID', ctx.state.requestId);
    await next();
  };
}
