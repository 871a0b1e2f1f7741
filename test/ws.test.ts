import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type NetConnectOpts, type Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { Transaction } from '../engine/account.ts';
import { createTransactionFeed } from '../engine/transaction-feed.ts';
import type { Gateway } from '../gateway.ts';
import type { Caller } from '../http/auth.ts';
import { createNotificationSockets, WS_CLOSE, type WebSocketLimits } from '../http/websocket.ts';
import { createLogger } from '../logger.ts';
import { FAST_BANK } from './support/bank.ts';
import {
  ADMIN_KEY,
  client,
  createUser,
  startTestGateway,
  startGatewayPair,
  createUserOwnedBy,
} from './support/gateway.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { pendingTransaction } from './support/transactions.ts';
import { eventually, scaled } from './support/time.ts';

// GET /api/v1/ws: the live feed over a WebSocket, on real gateways (Postgres, Redis, the in-process
// bank), and the socket module alone on a plain server for what takes the gateway's fixed limits
// (heartbeat, lifetime, backpressure, the auth message's timeout) too long to wait for.

type User = { id: string; api_key: string };
type Message = { type: string; data?: any; user_id?: string | null };
type Closed = { code: number; reason: string };

const CORS_ORIGIN = 'https://app.example.test';

/** Resolves with `promise`, or fails after `timeout_ms` (scaled) saying what was awaited. */
async function within<T>(promise: Promise<T>, what: string, timeout_ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${scaled(timeout_ms)} ms`)), scaled(timeout_ms));
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A WebSocket to `base` whose messages queue up for the test to take in order. */
function openSocket(
  base: string,
  options: {
    key?: string;
    query?: string;
    headers?: Record<string, string>;
    autoPong?: boolean;
    /** The TCP connection under the socket, for a test that stops reading it. */
    onSocket?: (socket: Socket) => void;
  } = {},
) {
  const headers = { ...options.headers, ...(options.key ? { authorization: `Bearer ${options.key}` } : {}) };
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/ws${options.query ?? ''}`, {
    headers,
    autoPong: options.autoPong ?? true,
    ...(options.onSocket
      ? {
          createConnection: ((connectOptions: NetConnectOpts) => {
            const socket = tcpConnect(connectOptions);
            options.onSocket!(socket);
            return socket;
          }) as typeof tcpConnect,
        }
      : {}),
  });
  const queue: Message[] = [];
  let wake = () => {};
  ws.on('message', (data) => {
    queue.push(JSON.parse((data as Buffer).toString('utf8')) as Message);
    wake();
  });
  // What a test looks at is the close and its code; a refused handshake is `handshake`'s business.
  ws.on('error', () => {});
  const closed = new Promise<Closed>((resolve) =>
    ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      wake();
    }),
  );
  const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));

  /** The next message; fails when the socket closes first or none comes in time. */
  async function next(timeout_ms = 10_000): Promise<Message> {
    const deadline = Date.now() + scaled(timeout_ms);
    for (;;) {
      const message = queue.shift();
      if (message) return message;
      if (ws.readyState === WebSocket.CLOSED)
        throw new Error(`closed before a message: ${JSON.stringify(await closed)}`);
      if (Date.now() > deadline) throw new Error(`no message within ${scaled(timeout_ms)} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  return {
    ws,
    opened,
    next,
    /** How the server closed the socket. */
    closed: (timeout_ms?: number) => within(closed, 'the close', timeout_ms),
    /** Waits for the `subscribed` message, after which every change is delivered. */
    async subscribed(): Promise<Message> {
      const first = await next();
      assert.equal(first.type, 'subscribed', JSON.stringify(first));
      return first;
    },
    /** The transactions of `transaction` messages until `until` holds for one (inclusive). */
    async transactionsUntil(until: (transaction: any) => boolean): Promise<any[]> {
      const seen: any[] = [];
      for (;;) {
        const message = await next();
        assert.equal(message.type, 'transaction', JSON.stringify(message));
        seen.push(message.data);
        if (until(message.data)) return seen;
      }
    },
  };
}

/** The status a WebSocket handshake is answered with (101 when upgraded), and the body of a refusal. */
function handshake(base: string, headers: Record<string, string>, path = '/api/v1/ws') {
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64'),
        ...headers,
      },
    });
    req.on('error', reject);
    req.on('upgrade', (_response, socket: Socket) => {
      socket.destroy();
      resolve({ status: 101, body: undefined });
    });
    req.on('response', (response: IncomingMessage) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
    req.end();
  });
}

const settled = (id: string) => (t: { id: string; status: string }) =>
  t.id === id && (t.status === 'succeeded' || t.status === 'failed');

async function deposit(request: ReturnType<typeof client>, user: User, amount: number): Promise<{ id: string }> {
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json as { id: string };
}

/**
 * The statuses the transaction went through, one per event of its audit trail: usually pending →
 * processing → succeeded; on a loaded machine a bank call may time out first (an attempt_failed,
 * still pending), or the callback overtake the bank's answer (pending → succeeded).
 */
async function statusesOf(request: ReturnType<typeof client>, user: User, id: string) {
  const shown = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
  const { events, ...transaction } = shown.json as { events: { status: string | null }[] };
  let status = 'pending';
  return { statuses: events.map((event) => (status = event.status ?? status)), transaction };
}

describe('GET /api/v1/ws on a gateway', () => {
  let gateway: Gateway;
  let request: ReturnType<typeof client>;
  let alice: User;
  let bob: User;

  before(async () => {
    gateway = await startTestGateway({ ...FAST_BANK, CORS_ORIGINS: CORS_ORIGIN });
    request = client(gateway.url);
    alice = await createUser(request, 'Alice');
    bob = await createUser(request, 'Bob');
  });
  after(() => gateway.close());

  test('authenticated by header: each change of a deposit, in order, in the shape of REST', async () => {
    const socket = openSocket(gateway.url, { key: alice.api_key });
    try {
      assert.deepEqual(await socket.subscribed(), { type: 'subscribed', user_id: alice.id });
      const created = await deposit(request, alice, 12_34);
      const seen = await socket.transactionsUntil(settled(created.id));
      const { statuses, transaction } = await statusesOf(request, alice, created.id);
      assert.deepEqual(
        seen.map((t) => t.status),
        statuses,
      );
      assert.equal(statuses[0], 'pending');
      assert.equal(statuses.at(-1), 'succeeded');
      assert.deepEqual(seen.at(-1), transaction);
    } finally {
      socket.ws.close();
    }
  });

  test('authenticated by its first message, as a browser does: the same changes', async () => {
    const socket = openSocket(gateway.url);
    try {
      await socket.opened;
      socket.ws.send(JSON.stringify({ type: 'auth', key: alice.api_key }));
      assert.deepEqual(await socket.subscribed(), { type: 'subscribed', user_id: alice.id });
      const created = await deposit(request, alice, 5_67);
      const seen = await socket.transactionsUntil(settled(created.id));
      const { statuses } = await statusesOf(request, alice, created.id);
      assert.deepEqual(
        seen.map((t) => t.status),
        statuses,
      );
    } finally {
      socket.ws.close();
    }
  });

  test('a wrong key, a message other than the auth message, or a bad query: closed with its code', async () => {
    const wrongHeader = openSocket(gateway.url, { key: 'pgw_not_a_key_of_anyone_0000' });
    assert.deepEqual(await wrongHeader.closed(), { code: WS_CLOSE.unauthenticated, reason: 'the API key was refused' });

    const wrongMessage = openSocket(gateway.url);
    await wrongMessage.opened;
    wrongMessage.ws.send(JSON.stringify({ type: 'auth', key: 'pgw_not_a_key_of_anyone_0000' }));
    assert.equal((await wrongMessage.closed()).code, WS_CLOSE.unauthenticated);

    const notAuth = openSocket(gateway.url);
    await notAuth.opened;
    notAuth.ws.send('hello');
    assert.deepEqual(await notAuth.closed(), {
      code: WS_CLOSE.unauthenticated,
      reason: 'expected {"type":"auth","key":"<API key>"} first',
    });

    const badQuery = openSocket(gateway.url, { key: alice.api_key, query: '?user_id=nope' });
    assert.equal((await badQuery.closed()).code, WS_CLOSE.bad_request);
  });

  test("a user gets only their own changes; another user's id is not found", async () => {
    const own = openSocket(gateway.url, { key: alice.api_key });
    try {
      await own.subscribed();
      const bobs = await deposit(request, bob, 3_00);
      const alices = await deposit(request, alice, 4_00);
      const seen = await own.transactionsUntil(settled(alices.id));
      assert.deepEqual([...new Set(seen.map((t) => t.user_id))], [alice.id]);
      assert.ok(!seen.some((t) => t.id === bobs.id));
    } finally {
      own.ws.close();
    }
    const others = openSocket(gateway.url, { key: alice.api_key, query: `?user_id=${bob.id}` });
    assert.equal((await others.closed()).code, WS_CLOSE.not_found);
  });

  test("the admin gets everyone's changes, or one user's with user_id", async () => {
    const everyone = openSocket(gateway.url, { key: ADMIN_KEY });
    const onlyBob = openSocket(gateway.url, { key: ADMIN_KEY, query: `?user_id=${bob.id}` });
    try {
      assert.deepEqual(await everyone.subscribed(), { type: 'subscribed', user_id: null });
      assert.deepEqual(await onlyBob.subscribed(), { type: 'subscribed', user_id: bob.id });
      const alices = await deposit(request, alice, 1_00);
      const bobs = await deposit(request, bob, 2_00);
      // Both settle, in either order: the admin's socket carries the two users' changes.
      const finished = new Set<string>();
      const seenByAdmin = await everyone.transactionsUntil((t) => {
        if (settled(alices.id)(t) || settled(bobs.id)(t)) finished.add(t.id);
        return finished.size === 2;
      });
      assert.deepEqual([...new Set(seenByAdmin.map((t) => t.user_id))].sort(), [alice.id, bob.id].sort());
      const seenForBob = await onlyBob.transactionsUntil(settled(bobs.id));
      assert.deepEqual([...new Set(seenForBob.map((t) => t.user_id))], [bob.id]);
    } finally {
      everyone.ws.close();
      onlyBob.ws.close();
    }
    const unknown = openSocket(gateway.url, { key: ADMIN_KEY, query: `?user_id=${crypto.randomUUID()}` });
    assert.equal((await unknown.closed()).code, WS_CLOSE.not_found);
  });

  test('sockets and event streams of one caller are bounded together (4429); leaving frees a place', async () => {
    const carol = await createUser(request, 'Carol');
    const controller = new AbortController();
    const sockets: ReturnType<typeof openSocket>[] = [];
    try {
      // The feed's bound per caller is 8 (ENGINE_LIMITS.feed_subscribers_per_owner_max): 4 of each.
      for (let i = 0; i < 4; i += 1) {
        const stream = await fetch(`${gateway.url}/api/v1/events`, {
          headers: { authorization: `Bearer ${carol.api_key}` },
          signal: controller.signal,
        });
        assert.equal(stream.status, 200);
        const socket = openSocket(gateway.url, { key: carol.api_key });
        await socket.subscribed();
        sockets.push(socket);
      }
      const ninth = openSocket(gateway.url, { key: carol.api_key });
      assert.deepEqual(await ninth.closed(), {
        code: WS_CLOSE.too_many,
        reason: 'too many sockets and event streams for this caller',
      });
      const stream = await fetch(`${gateway.url}/api/v1/events`, {
        headers: { authorization: `Bearer ${carol.api_key}` },
      });
      assert.equal(stream.status, 503);
      await stream.body?.cancel();

      sockets.pop()!.ws.close();
      const again = await eventually(async () => {
        const socket = openSocket(gateway.url, { key: carol.api_key });
        const first = await Promise.race([socket.next(), socket.closed()]);
        if ('type' in first && first.type === 'subscribed') return socket;
        return undefined;
      });
      sockets.push(again);
    } finally {
      controller.abort();
      for (const socket of sockets) socket.ws.close();
    }
  });

  test("pages of the gateway's origin or of CORS_ORIGINS may open it; others get 403; plain HTTP gets 426", async () => {
    const host = new URL(gateway.url).host;
    assert.equal((await handshake(gateway.url, { origin: `http://${host}` })).status, 101);
    assert.equal((await handshake(gateway.url, { origin: CORS_ORIGIN })).status, 101);
    assert.equal((await handshake(gateway.url, {})).status, 101);
    const foreign = await handshake(gateway.url, { origin: 'https://evil.example.test' });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error, 'origin_not_allowed');

    const plain = await request('GET', '/api/v1/ws', { key: alice.api_key });
    assert.equal(plain.status, 426);
    assert.equal(plain.json.error, 'upgrade_required');
    assert.equal(plain.headers.get('upgrade'), 'websocket');
  });

  test('an upgrade to anything else (h2c, another path) is answered as plain HTTP, as before', async () => {
    const health = await handshake(gateway.url, { upgrade: 'h2c', connection: 'Upgrade, HTTP2-Settings' }, '/health');
    assert.equal(health.status, 200);
    const elsewhere = await handshake(gateway.url, {}, '/api/v1/nowhere');
    assert.equal(elsewhere.status, 404);
    assert.equal(elsewhere.body.error, 'not_found');
  });
});

test('a client that resets the connection after an upgrade answered as plain HTTP does not bring the gateway down', async () => {
  const gateway = await startTestGateway();
  try {
    const { port } = new URL(gateway.url);
    for (let i = 0; i < 3; i += 1) {
      const socket = tcpConnect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
      // The whole answer (the gateway then ends its side), then a reset instead of a close.
      let text = '';
      for await (const chunk of socket) {
        text += String(chunk);
        if (text.includes('"status"')) break;
      }
      assert.match(text, /^HTTP\/1\.1 200/);
      socket.resetAndDestroy();
    }
    assert.equal((await fetch(`${gateway.url}/health`)).status, 200);
  } finally {
    await gateway.close();
  }
});

describe('GET /api/v1/ws across two instances', () => {
  const SHARDS = 8;
  const prefix = testKeyPrefix('ws');
  // Low, so that a test can reach it; the other tests here never fail to authenticate.
  const AUTH_FAILURES_MAX = 3;
  let a: Gateway;
  let b: Gateway;
  let user: User;

  before(async () => {
    [a, b] = await startGatewayPair('ws', SHARDS, {
      ...FAST_BANK,
      REDIS_KEY_PREFIX: prefix,
      RATE_LIMIT_AUTH_FAILURES_PER_MIN: String(AUTH_FAILURES_MAX),
    });
    // A user whose account a owns: its changes are committed on a.
    user = await createUserOwnedBy(a, a, SHARDS, 'Owned by a');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await dropKeys(prefix);
  });

  test("a change committed on the account's owner reaches a socket on the other instance", async () => {
    const socket = openSocket(b.url, { key: user.api_key });
    try {
      await socket.subscribed();
      const created = await deposit(client(a.url), user, 9_99);
      const seen = await socket.transactionsUntil(settled(created.id));
      assert.deepEqual(seen.at(-1).status, 'succeeded');
      assert.ok(seen.every((t) => t.id === created.id));
    } finally {
      socket.ws.close();
    }
  });

  test('closing a gateway closes its sockets with 1001, subscribed or still authenticating, at once', async () => {
    const subscribed = openSocket(b.url, { key: user.api_key });
    await subscribed.subscribed();
    const authenticating = openSocket(b.url);
    await authenticating.opened;
    const started = Date.now();
    await within(b.close(), 'the gateway closing');
    assert.equal((await subscribed.closed()).code, WS_CLOSE.going_away);
    assert.equal((await authenticating.closed()).code, WS_CLOSE.going_away);
    // Open sockets are no connections of the HTTP server's: without closing them, close() would wait for them.
    assert.ok(Date.now() - started < scaled(5000), `close took ${Date.now() - started} ms`);
  });

  test('refused keys count as failed authentications, with those of HTTP requests: then 4429 and 429', async () => {
    for (let i = 0; i < AUTH_FAILURES_MAX; i += 1) {
      const refused = openSocket(a.url, { key: `pgw_wrong_key_number_${i}_000000` });
      assert.equal((await refused.closed()).code, WS_CLOSE.unauthenticated);
    }
    const blocked = openSocket(a.url, { key: user.api_key });
    assert.deepEqual(await blocked.closed(), { code: WS_CLOSE.too_many, reason: 'too many failed authentications' });
    const http = await client(a.url)('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
    assert.equal(http.status, 429);
  });
});

describe('the sockets on their own', () => {
  const log = createLogger('silent');
  const users = { findById: () => Promise.resolve(undefined) };
  const LIMITS: WebSocketLimits = {
    ping_interval_ms: 60_000,
    auth_timeout_ms: 60_000,
    buffered_max_bytes: 1024 * 1024,
    lifetime_ms: 60_000,
    close_timeout_ms: 60_000,
    message_max_bytes: 4096,
  };

  /** The sockets on a plain server, over a real feed; the key `user:<id>` is that user's. */
  async function serve(limits: Partial<WebSocketLimits> = {}, draining = () => false) {
    const feed = createTransactionFeed({ subscribers_max: 10, subscribers_per_owner_max: 10, buffer_max: 256, log });
    const failures: string[] = [];
    const sockets = createNotificationSockets({
      feed,
      users,
      callerOf: (key) =>
        Promise.resolve(key.startsWith('user:') ? ({ kind: 'user', id: key.slice(5) } satisfies Caller) : undefined),
      admission: {
        refusal: () => Promise.resolve(undefined),
        failed: (address) => Promise.resolve(void failures.push(address)),
      },
      cors_origins: [],
      draining,
      otherwise: (_req, socket) => socket.destroy(),
      limits: { ...LIMITS, ...limits },
      log,
    });
    const server = createServer((_req, res) => res.writeHead(404).end());
    server.on('upgrade', sockets.upgrade);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const close = async () => {
      feed.close();
      sockets.close();
      await new Promise((resolve) => server.close(resolve));
    };
    return { url, feed, sockets, failures, close };
  }

  test('a client that answers pings stays; one that does not is cut off', async () => {
    // Long enough that a busy event loop does not hold the answering client's pong past the next ping.
    const served = await serve({ ping_interval_ms: scaled(250) });
    try {
      const user = crypto.randomUUID();
      const answering = openSocket(served.url, { key: `user:${user}` });
      const silent = openSocket(served.url, { key: `user:${user}`, autoPong: false });
      await answering.subscribed();
      await silent.subscribed();
      let pings = 0;
      answering.ws.on('ping', () => (pings += 1));
      // Cut off at the second ping after the one it did not answer: no close frame, the connection ends.
      assert.equal((await silent.closed()).code, 1006);
      await eventually(() => (pings >= 3 ? true : undefined));
      assert.equal(answering.ws.readyState, WebSocket.OPEN);
      answering.ws.close();
    } finally {
      await served.close();
    }
  });

  test('a client that stops reading is dropped (4408) once its queue passes the bound', async () => {
    const served = await serve({ buffered_max_bytes: 64 * 1024 });
    try {
      const user = crypto.randomUUID();
      let tcp: Socket | undefined;
      const slow = openSocket(served.url, { key: `user:${user}`, onSocket: (socket) => (tcp = socket) });
      await slow.subscribed();
      tcp!.pause();
      // Changes of about 2 kB, a batch a turn, until the server gives up on the client.
      const description = 'x'.repeat(2000);
      const deadline = Date.now() + scaled(20_000);
      while (served.feed.size() > 0) {
        assert.ok(Date.now() < deadline, 'the slow client was never dropped');
        const batch: Transaction[] = Array.from({ length: 50 }, () =>
          pendingTransaction({ user_id: user, description }),
        );
        served.feed.receive(batch);
        await nextTurn();
      }
      tcp!.resume();
      assert.deepEqual(await slow.closed(), {
        code: WS_CLOSE.too_slow,
        reason: 'too slow: reconnect and read the state again',
      });
    } finally {
      await served.close();
    }
  });

  test('no auth message in time: closed 4401 and counted as a failed authentication', async () => {
    const served = await serve({ auth_timeout_ms: scaled(100) });
    try {
      const quiet = openSocket(served.url);
      const closed = await quiet.closed();
      assert.equal(closed.code, WS_CLOSE.unauthenticated);
      assert.match(closed.reason, /^no auth message within/);
      assert.deepEqual(served.failures, ['127.0.0.1']);
    } finally {
      await served.close();
    }
  });

  test('a socket ends after its lifetime (4000); a new one while draining is told to retry (1013)', async () => {
    let draining = false;
    const served = await serve({ lifetime_ms: scaled(200) }, () => draining);
    try {
      const socket = openSocket(served.url, { key: `user:${crypto.randomUUID()}` });
      await socket.subscribed();
      assert.deepEqual(await socket.closed(), { code: WS_CLOSE.lifetime_ended, reason: 'lifetime ended: reconnect' });
      draining = true;
      const late = openSocket(served.url, { key: `user:${crypto.randomUUID()}` });
      assert.deepEqual(await late.closed(), {
        code: WS_CLOSE.try_again_later,
        reason: 'the server is shutting down',
      });
    } finally {
      await served.close();
    }
  });
});
