import { ServerResponse, type IncomingMessage, type RequestListener } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData, type ServerOptions } from 'ws';
import { z } from 'zod';
import type { EndReason, Subscription, TransactionFeed } from '../engine/transaction-feed.ts';
import type { Logger } from '../logger.ts';
import type { UserStore } from '../persistence/users.ts';
import { toApiError } from './app.ts';
import { addressKey, type AuthFailures } from './auth-failure-limit.ts';
import { bearerKey, type Caller } from './auth.ts';
import type { ApiLimits } from './rate-limit.ts';
import type { Count } from './rate-limit-store.ts';
import { requestIdFrom } from './request-id.ts';
import { streamScope } from './routes/events.ts';
import { eventsQuery } from './schemas.ts';
import { transactionJson } from './transaction-json.ts';

// `GET /api/v1/ws`: the live feed of the caller's transaction changes (the same feed as the
// server-sent events of `GET /api/v1/events`, so changes committed on other instances arrive too),
// over a WebSocket. The handshake does not pass through Koa, so what its middleware does for the
// event stream is done here with the same parts: the draining check, the failed-authentication
// limit, the global rate limit (counted before the key is known), authentication through the edge's
// key cache, then the stream's scope and the feed's bounds (its per-caller limit is shared with the
// event streams). A refusal after the handshake is a close code, because a browser sees nothing of an
// HTTP answer to a failed handshake: the codes are `WS_CLOSE` below.

/** The path, matched as @koa/router matches its routes: case-insensitively, with an optional trailing slash. */
export const WS_PATH = '/api/v1/ws';
const WS_PATH_PATTERN = /^\/api\/v1\/ws\/?$/i;

/** Why the server closes a socket: RFC 6455's codes, and this API's in 4000–4999 (4xxx mirrors HTTP statuses). */
export const WS_CLOSE = {
  /** The server is shutting down (an open socket). */
  going_away: 1001,
  /** A change could not be delivered; reconnect and read the state again. */
  internal_error: 1011,
  /** The server cannot take the socket now (shutting down, storage unavailable, at capacity); retry shortly. */
  try_again_later: 1013,
  /** The socket reached its lifetime; reconnect (the key is checked again). */
  lifetime_ended: 4000,
  /** The query is not valid (`user_id` must be a UUID; nothing else is taken). */
  bad_request: 4400,
  /** No valid API key: none in time, a message other than the auth message, or a key refused. */
  unauthenticated: 4401,
  /** The `user_id` does not exist or is not the caller's. */
  not_found: 4404,
  /** The client fell behind: the changes waiting for it passed their bound. */
  too_slow: 4408,
  /** Too many sockets and event streams of this caller, too many failed authentications, or the rate limit. */
  too_many: 4429,
} as const;

type Closing = { code: (typeof WS_CLOSE)[keyof typeof WS_CLOSE]; reason: string };

/** The bounds of one socket's life; http/edge.ts sets them in EDGE_LIMITS. */
export interface WebSocketLimits {
  /** How often the server pings; a client that has not answered the previous ping by then is cut off. */
  ping_interval_ms: number;
  /** How long a client without an `Authorization` header has to send its auth message. */
  auth_timeout_ms: number;
  /** Bytes queued for a client beyond which it is dropped as too slow. */
  buffered_max_bytes: number;
  /** How long a socket lasts before the server ends it, so that its key is checked again. */
  lifetime_ms: number;
  /** How long the server waits for the client's answer to its close frame before cutting the connection. */
  close_timeout_ms: number;
  /** The largest message a client may send (the auth message is the only one read). */
  message_max_bytes: number;
}

export interface NotificationSocketsOptions {
  feed: TransactionFeed;
  users: Pick<UserStore, 'findById'>;
  /** The caller a key belongs to: `keyAuthenticator` over the edge's key cache (http/auth.ts). */
  callerOf: (key: string) => Promise<Caller | undefined>;
  /** Who may open a socket before authenticating, and the count of those who fail to (see `admission`). */
  admission: Admission;
  /** Origins other than the gateway's own whose pages may open a socket (CORS_ORIGINS). */
  cors_origins: readonly string[];
  /** True once the instance is stopping. */
  draining: () => boolean;
  /** Upgrades this module does not take (another path or protocol): answered as plain HTTP. */
  otherwise: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  limits: WebSocketLimits;
  log: Logger;
}

/** The limits a client meets before it authenticates, and where its failures are counted. */
export interface Admission {
  /** Why `address` may not open a socket now, or undefined when it may. */
  refusal(address: string): Promise<Closing | undefined>;
  /** Counts a failed authentication of `address`. */
  failed(address: string): Promise<void>;
}

/** What a counter's reading means for a new socket: over its limit, uncounted under a `deny` policy, or fine. */
function verdict(count: Count, over: boolean, deny: boolean, reason: string): Closing | undefined {
  if (count.store === 'none')
    return deny ? { code: WS_CLOSE.try_again_later, reason: 'rate limits cannot be checked' } : undefined;
  return over ? { code: WS_CLOSE.too_many, reason } : undefined;
}

/**
 * The edge's own counters as an `Admission`: the failed-authentication limit (read, as the HTTP
 * middleware does, and counted on each refused key) and one hit of the global rate limit per socket,
 * so that sockets and requests from an address are limited together.
 */
export function admission(authFailures: AuthFailures, limits: ApiLimits): Admission {
  return {
    async refusal(address) {
      const seen = await authFailures.counter.peek(addressKey(address));
      const deny = authFailures.on_redis_down === 'deny';
      const failures = verdict(
        seen,
        seen.store !== 'none' && seen.consumed >= seen.limit,
        deny,
        'too many failed authentications',
      );
      if (failures) return failures;
      const counted = await limits.global.consume('all');
      const over = counted.store !== 'none' && counted.consumed > counted.limit;
      return verdict(counted, over, limits.on_redis_down === 'deny', 'rate limit exceeded');
    },
    async failed(address) {
      await authFailures.counter.consume(addressKey(address));
    },
  };
}

/**
 * Whether a page of the request's `Origin` may open the socket: its own origin (the same host it
 * asks), one of `cors_origins`, or no `Origin` at all (not a browser). Keys are never cookies, so a
 * foreign page could only use a key it already holds; refusing it keeps other sites off the feed.
 */
export function originAllowed(req: IncomingMessage, cors_origins: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (cors_origins.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host?.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Answers an upgrade request as the plain HTTP request it also is, with `listener` (the Koa app),
 * then closes the connection. Node hands every request carrying `Upgrade` to the upgrade listener
 * once there is one, so without this an `Upgrade: h2c` GET (curl --http2) would lose its answer.
 * A body sent with such a request is not read (Node leaves it to the upgrade): it arrives empty.
 */
export function answerAsHttp(listener: RequestListener) {
  return (req: IncomingMessage, socket: Duplex): void => {
    // Node takes its own error listener off a socket it hands to `upgrade`: a reset must not go unheard.
    socket.on('error', () => socket.destroy());
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.on('finish', () => {
      res.detachSocket(socket as Socket);
      socket.end();
    });
    listener(req, res);
  };
}

const authMessage = z.strictObject({ type: z.literal('auth'), key: z.string() });

type FirstMessage = { kind: 'message'; text: string | undefined } | { kind: 'timeout' } | { kind: 'closed' };

/** A message's text; undefined for a binary message. ws hands a text message over as one Buffer. */
function textOf(data: RawData, binary: boolean): string | undefined {
  return !binary && Buffer.isBuffer(data) ? data.toString('utf8') : undefined;
}

/**
 * The client's first message, listened for from the moment the socket opens (a client sends it
 * straight after the handshake, while the checks before authentication still run), or a timeout.
 */
function firstMessage(ws: WebSocket, timeout_ms: number): { next: Promise<FirstMessage>; cancel(): void } {
  let settle: (message: FirstMessage) => void = () => {};
  const next = new Promise<FirstMessage>((resolve) => (settle = resolve));
  const done = (message: FirstMessage) => {
    clearTimeout(timer);
    ws.off('message', onMessage);
    ws.off('close', onClose);
    settle(message);
  };
  const onMessage = (data: RawData, binary: boolean) => done({ kind: 'message', text: textOf(data, binary) });
  const onClose = () => done({ kind: 'closed' });
  const timer = setTimeout(() => done({ kind: 'timeout' }), timeout_ms);
  ws.on('message', onMessage);
  ws.on('close', onClose);
  return { next, cancel: () => done({ kind: 'closed' }) };
}

/** The parameters of the handshake's query, as Koa gives them to the event stream's schema. */
function queryOf(url: URL): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const name of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(name);
    query[name] = values.length === 1 ? values[0]! : values;
  }
  return query;
}

/** How a subscription's end closes its socket; undefined when the client left first. */
function closingFor(reason: EndReason, lifetimeEnded: boolean): Closing | undefined {
  switch (reason) {
    case 'closed':
      return { code: WS_CLOSE.going_away, reason: 'the server is shutting down' };
    case 'overflow':
      return { code: WS_CLOSE.too_slow, reason: 'too slow: reconnect and read the state again' };
    case 'failed':
      return { code: WS_CLOSE.internal_error, reason: 'a change could not be delivered: reconnect' };
    case 'unsubscribed':
      return lifetimeEnded ? { code: WS_CLOSE.lifetime_ended, reason: 'lifetime ended: reconnect' } : undefined;
  }
}

/** One socket's state, for the heartbeat and the log. */
interface Session {
  request_id: string;
  /** Whether the client answered the last ping (or has not been pinged yet). */
  alive: boolean;
  caller: Caller | undefined;
  /** How the server closed it, when it did. */
  closing: Closing | undefined;
  sent: number;
  opened_at_ms: number;
}

/**
 * The WebSocket side of the edge: `upgrade` for the server's `upgrade` event, and `close` for the
 * start of a shutdown (every socket closes with 1001, and the heartbeat stops).
 */
export function createNotificationSockets(options: NotificationSocketsOptions) {
  const { feed, limits, log } = options;
  // ws terminates a socket whose client has not answered the close frame within `closeTimeout`; the
  // option exists (ws ≥ 8.19) but is missing from @types/ws, hence the wider type.
  const serverOptions: ServerOptions & { closeTimeout: number } = {
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: limits.message_max_bytes,
    closeTimeout: limits.close_timeout_ms,
  };
  const wss = new WebSocketServer(serverOptions);
  const sessions = new Map<WebSocket, Session>();
  const requestIds = new WeakMap<IncomingMessage, string>();
  wss.on('headers', (headers, req) => headers.push(`X-Request-ID: ${requestIds.get(req)}`));

  const heartbeat = setInterval(() => {
    for (const [ws, session] of sessions) {
      if (!session.alive) {
        log.info({ request_id: session.request_id, caller: session.caller?.id }, 'websocket cut off: no pong');
        ws.terminate();
        continue;
      }
      session.alive = false;
      ws.ping();
    }
  }, limits.ping_interval_ms);
  heartbeat.unref();

  function close(ws: WebSocket, session: Session, closing: Closing): void {
    session.closing ??= closing;
    ws.close(closing.code, closing.reason);
  }

  /** The caller of the socket's key (its `Authorization` header, else its first message), or why there is none. */
  async function identify(
    req: IncomingMessage,
    first: ReturnType<typeof firstMessage>,
  ): Promise<Caller | { refused: string } | 'gone'> {
    const header = req.headers.authorization;
    if (header) {
      first.cancel();
      const key = bearerKey(header);
      return (key !== undefined && (await options.callerOf(key))) || { refused: 'the API key was refused' };
    }
    const message = await first.next;
    if (message.kind === 'closed') return 'gone';
    if (message.kind === 'timeout') return { refused: `no auth message within ${limits.auth_timeout_ms} ms` };
    let parsed: z.ZodSafeParseResult<z.infer<typeof authMessage>> | undefined;
    try {
      parsed = message.text === undefined ? undefined : authMessage.safeParse(JSON.parse(message.text));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) return { refused: 'expected {"type":"auth","key":"<API key>"} first' };
    return (await options.callerOf(parsed.data.key)) ?? { refused: 'the API key was refused' };
  }

  /** Copies the subscription into the socket until either ends; a client too far behind is dropped. */
  async function relay(ws: WebSocket, session: Session, subscription: Subscription): Promise<Closing | undefined> {
    let lifetimeEnded = false;
    const lifetime = setTimeout(() => {
      lifetimeEnded = true;
      subscription.close();
    }, limits.lifetime_ms);
    ws.once('close', () => subscription.close());
    try {
      for (;;) {
        const item = await subscription.next();
        if (item.kind === 'end') return closingFor(item.reason, lifetimeEnded);
        if (ws.readyState !== WebSocket.OPEN) continue;
        ws.send(JSON.stringify({ type: 'transaction', data: transactionJson(item.transaction) }));
        session.sent += 1;
        // The client stopped reading: the kernel's buffers are full and ws queues in memory.
        if (ws.bufferedAmount > limits.buffered_max_bytes) {
          subscription.close();
          return closingFor('overflow', false);
        }
      }
    } finally {
      clearTimeout(lifetime);
    }
  }

  /** The socket's life after the handshake, to the close it ends with (undefined when the client left). */
  async function serve(ws: WebSocket, req: IncomingMessage, session: Session): Promise<Closing | undefined> {
    const first = firstMessage(ws, limits.auth_timeout_ms);
    if (options.draining()) {
      first.cancel();
      return { code: WS_CLOSE.try_again_later, reason: 'the server is shutting down' };
    }
    const address = req.socket.remoteAddress ?? '';
    const refusal = await options.admission.refusal(address);
    if (refusal) {
      first.cancel();
      return refusal;
    }
    const query = eventsQuery.safeParse(queryOf(new URL(req.url ?? '/', 'http://gateway')));
    if (!query.success) {
      first.cancel();
      return { code: WS_CLOSE.bad_request, reason: 'the query takes only user_id, a UUID' };
    }
    const caller = await identify(req, first);
    if (caller === 'gone') return undefined;
    if ('refused' in caller) {
      await options.admission.failed(address);
      return { code: WS_CLOSE.unauthenticated, reason: caller.refused };
    }
    session.caller = caller;
    let scope: string | undefined;
    try {
      scope = await streamScope(caller, query.data.user_id, options.users);
    } catch (caught) {
      if (toApiError(caught).status !== 404) throw caught;
      return { code: WS_CLOSE.not_found, reason: 'no such user' };
    }
    if (ws.readyState !== WebSocket.OPEN) return undefined;
    const subscribed = feed.subscribe({ user_id: scope, owner: caller.id });
    if (!subscribed.ok) {
      if (subscribed.reason === 'owner_subscribers_max')
        return { code: WS_CLOSE.too_many, reason: 'too many sockets and event streams for this caller' };
      const busy = subscribed.reason === 'closed' ? 'the server is shutting down' : 'too many subscribers';
      return { code: WS_CLOSE.try_again_later, reason: busy };
    }
    ws.send(JSON.stringify({ type: 'subscribed', user_id: scope ?? null }));
    log.info({ request_id: session.request_id, caller: caller.id, user_id: scope }, 'websocket subscribed');
    return relay(ws, session, subscribed.subscription);
  }

  function open(ws: WebSocket, req: IncomingMessage, request_id: string): void {
    const session: Session = {
      request_id,
      alive: true,
      caller: undefined,
      closing: undefined,
      sent: 0,
      opened_at_ms: Date.now(),
    };
    sessions.set(ws, session);
    ws.on('pong', () => (session.alive = true));
    ws.on('error', (error) => log.info({ err: error, request_id }, 'websocket error'));
    ws.once('close', (code: number) => {
      sessions.delete(ws);
      log.info(
        {
          request_id,
          caller: session.caller?.id,
          code,
          closed_by: session.closing ? 'server' : 'client',
          reason: session.closing?.reason,
          sent: session.sent,
          duration_ms: Date.now() - session.opened_at_ms,
        },
        'websocket closed',
      );
    });
    serve(ws, req, session).then(
      (closing) => {
        if (closing) close(ws, session, closing);
      },
      (error: unknown) => {
        // Storage that did not answer is worth a retry; anything else is ours.
        const transient = toApiError(error).status === 503;
        if (!transient) log.error({ err: error, request_id }, 'websocket failed');
        const reason = transient ? 'storage unavailable: retry shortly' : 'internal error';
        close(ws, session, { code: transient ? WS_CLOSE.try_again_later : WS_CLOSE.internal_error, reason });
      },
    );
  }

  return {
    /** The server's `upgrade` listener: WebSocket handshakes on WS_PATH from an allowed origin; the rest to `otherwise`. */
    upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      const path = (req.url ?? '/').split('?')[0]!;
      const websocket = req.headers.upgrade?.toLowerCase() === 'websocket';
      if (!websocket || !WS_PATH_PATTERN.test(path) || !originAllowed(req, options.cors_origins)) {
        options.otherwise(req, socket, head);
        return;
      }
      const request_id = requestIdFrom(req.headers['x-request-id']);
      requestIds.set(req, request_id);
      wss.handleUpgrade(req, socket, head, (ws) => open(ws, req, request_id));
    },

    /** Closes every socket with 1001 and stops the heartbeat: the start of a shutdown. */
    close: (): void => {
      clearInterval(heartbeat);
      for (const [ws, session] of sessions) close(ws, session, { code: WS_CLOSE.going_away, reason: 'shutting down' });
    },
  };
}
