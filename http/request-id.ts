import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';

// A client's id is kept when it is a plain token of sane length, so that it cannot inject log lines.
const CLIENT_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** Gives every request an id: the client's X-Request-ID when it sent a valid one, else a new UUID. */
export function requestId(): Middleware {
  return async (ctx, next) => {
    const sent = ctx.get('X-Request-ID');
    ctx.state.requestId = CLIENT_ID.test(sent) ? sent : randomUUID();
    ctx.set('X-Request-ID', ctx.state.requestId);
    await next();
  };
}
