import { PassThrough } from 'node:stream';
import Router from '@koa/router';
import type { Transaction } from '../../engine/account.ts';
import type { EndReason, Subscription, SubscribeResult, TransactionFeed } from '../../engine/transaction-feed.ts';
import type { Logger } from '../../logger.ts';
import type { UserStore } from '../../persistence/users.ts';
import { requireCaller, type Caller } from '../auth.ts';
import { errors } from '../errors.ts';
import { eventsQuery } from '../schemas.ts';
import { transactionJson } from '../transaction-json.ts';
import { parseInput } from '../validation.ts';

export interface EventRoutesDeps {
  feed: TransactionFeed;
  users: UserStore;
  /** How often a quiet stream sends a comment, so that proxies and clients see it is alive. */
  heartbeat_ms: number;
  /** How long one stream lasts before the server ends it and the client reconnects (re-authenticating). */
  lifetime_ms: number;
  /** The reconnection delay suggested to EventSource clients (the SSE `retry` field). */
  retry_ms: number;
  log: Logger;
}

/** Whose changes a caller's stream carries: a user's own; the admin's, one named user's or everyone's. */
export async function streamScope(
  caller: Caller,
  user_id: string | undefined,
  users: Pick<UserStore, 'findById'>,
): Promise<string | undefined> {
  if (caller.kind === 'user') {
    if (user_id !== undefined && user_id !== caller.id) throw errors.notFound({ what: 'user' });
    return caller.id;
  }
  if (user_id !== undefined && !(await users.findById(user_id))) throw errors.notFound({ what: 'user' });
  return user_id;
}

function refusal(reason: Extract<SubscribeResult, { ok: false }>['reason']) {
  return reason === 'closed' ? errors.shuttingDown() : errors.streamLimitReached();
}

/** One server-sent event: the transaction in the contract's shape (JSON has no raw newlines, so one data line). */
function frame(transaction: Transaction): string {
  return `event: transaction\ndata: ${JSON.stringify(transactionJson(transaction))}\n\n`;
}

/** Resolves once the stream can take more, or once it is gone. */
function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/**
 * Copies the subscription into the stream until either ends, honouring the stream's backpressure:
 * while the client reads slowly, changes wait in the feed's bounded buffer, which drops the
 * subscriber when it fills.
 */
async function pump(subscription: Subscription, stream: PassThrough, deps: EventRoutesDeps): Promise<EndReason> {
  const heartbeat = setInterval(() => {
    if (stream.writable && !stream.writableNeedDrain) stream.write(': heartbeat\n\n');
  }, deps.heartbeat_ms);
  const lifetime = setTimeout(() => subscription.close(), deps.lifetime_ms);
  stream.once('close', () => subscription.close());
  try {
    for (;;) {
      const item = await subscription.next();
      if (item.kind === 'end') {
        if (stream.writable) stream.write(`: end (${item.reason})\n\n`);
        return item.reason;
      }
      if (!stream.writable) continue;
      if (!stream.write(frame(item.transaction))) await drained(stream);
    }
  } finally {
    clearInterval(heartbeat);
    clearTimeout(lifetime);
    stream.end();
  }
}

/**
 * `GET /api/v1/events`: a server-sent-events stream of the caller's transaction changes (the admin's:
 * everyone's, or `?user_id=`'s), each as `event: transaction` with the transaction's JSON as `data`.
 * Bearer authentication only (no key in the URL, where logs and history would keep it): browsers read
 * the stream with `fetch`, which can send the header, rather than with EventSource, which cannot.
 */
export function eventRoutes(deps: EventRoutesDeps): Router {
  const router = new Router();

  router.get('/api/v1/events', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const { user_id } = parseInput(eventsQuery, ctx.query, 'query');
    const scope = await streamScope(caller, user_id, deps.users);
    const subscribed = deps.feed.subscribe({ user_id: scope, owner: caller.id });
    if (!subscribed.ok) throw refusal(subscribed.reason);

    ctx.type = 'text/event-stream';
    // A stream ends only when the client leaves or the server ends it (shutdown, lifetime, overflow);
    // closing the connection with it lets a shutdown finish without waiting for keep-alive timeouts.
    ctx.set('Connection', 'close');
    // Tells nginx-style proxies not to buffer the stream (deploy/nginx.conf also turns buffering off).
    ctx.set('X-Accel-Buffering', 'no');
    const stream = new PassThrough();
    // The first bytes send the headers, so the client knows it is subscribed from here on.
    stream.write(`retry: ${deps.retry_ms}\n\n`);
    ctx.body = stream;
    pump(subscribed.subscription, stream, deps).then(
      (reason) => {
        if (reason === 'overflow' || reason === 'failed')
          deps.log.warn({ caller: caller.id, reason }, 'stream dropped');
      },
      (error: unknown) => deps.log.error({ err: error, caller: caller.id }, 'event stream failed'),
    );
  });

  return router;
}
