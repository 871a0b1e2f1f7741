import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTransactionFeed } from '../engine/transaction-feed.ts';
import type { Gateway } from '../gateway.ts';
import { createApp } from '../http/app.ts';
import type { Caller } from '../http/auth.ts';
import { eventRoutes } from '../http/routes/events.ts';
import { createLogger } from '../logger.ts';
import type { UserStore } from '../persistence/users.ts';
import { eventually, FAST_BANK } from './support/bank.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { scaled } from './support/time.ts';

const SHUTDOWN_TIMEOUT_MS = 20_000;

type Frame = { event: string | undefined; data: string | undefined; comments: string[] };
type User = { id: string; api_key: string };

/** Reads server-sent events from a fetch body: each blank-line-terminated block is one frame. */
function sseReader(body: ReadableStream<Uint8Array>) {
  // Typed as the transform it is: with the DOM's types in the program (graphql-yoga's fetch brings
  // them) the decoder's writable side is declared wider than a byte stream's.
  const reader = body.pipeThrough(new TextDecoderStream() as TransformStream<Uint8Array, string>).getReader();
  let buffer = '';
  return {
    /** The next frame, or 'end' when the stream ends; fails after `timeout_ms`. */
    async next(timeout_ms = 5000): Promise<Frame | 'end'> {
      const deadline = Date.now() + scaled(timeout_ms);
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const frame: Frame = { event: undefined, data: undefined, comments: [] };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) frame.comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) frame.event = line.slice(7);
            else if (line.startsWith('data: ')) frame.data = line.slice(6);
          }
          return frame;
        }
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no event within ${scaled(timeout_ms)} ms`)),
            deadline - Date.now(),
          );
        });
        const read = await Promise.race([reader.read(), timeout]).finally(() => clearTimeout(timer));
        if (read.done) return 'end';
        buffer += read.value;
      }
    },
    /** The transactions of `event: transaction` frames until `until` holds for one (inclusive). */
    async transactionsUntil(until: (transaction: any) => boolean): Promise<any[]> {
      const seen: any[] = [];
      for (;;) {
        const frame = await this.next();
        assert.notEqual(frame, 'end', 'the stream ended');
        if (frame === 'end' || frame.event !== 'transaction') continue;
        const transaction = JSON.parse(frame.data!);
        seen.push(transaction);
        if (until(transaction)) return seen;
      }
    },
  };
}

/** Opens an event stream; the answer resolves once the headers arrive, i.e. once subscribed. */
async function subscribe(url: string, key: string | undefined, query = '') {
  const controller = new AbortController();
  const response = await fetch(`${url}/api/v1/events${query}`, {
    headers: key ? { authorization: `Bearer ${key}` } : {},
    signal: controller.signal,
  });
  return { response, controller, reader: response.ok && response.body ? sseReader(response.body) : undefined };
}

describe('GET /api/v1/events on the gateway', () => {
  let gateway: Gateway;
  let request: ReturnType<typeof client>;
  let alice: User;
  let bob: User;

  before(async () => {
    gateway = await startTestGateway({ ...FAST_BANK, SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
    request = client(gateway.url);
    alice = await createUser(request, 'Alice');
    bob = await createUser(request, 'Bob');
  });
  after(() => gateway.close());

  async function deposit(user: User, amount: number): Promise<{ id: string }> {
    const answer = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(answer.status, 202, answer.text);
    return answer.json as { id: string };
  }

  const settled = (id: string) => (t: { id: string; status: string }) =>
    t.id === id && (t.status === 'succeeded' || t.status === 'failed');

  test('without a key, with a bad key, for another user or with a bad query: refused before any stream', async () => {
    for (const key of [undefined, 'pgw_not_a_key_of_anyone_0000']) {
      const { response } = await subscribe(gateway.url, key);
      assert.equal(response.status, 401);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(((await response.json()) as { error: string }).error, 'unauthenticated');
    }
    const other = await subscribe(gateway.url, alice.api_key, `?user_id=${bob.id}`);
    assert.equal(other.response.status, 404);
    await other.response.body?.cancel();
    const unknown = await subscribe(gateway.url, ADMIN_KEY, `?user_id=${crypto.randomUUID()}`);
    assert.equal(unknown.response.status, 404);
    await unknown.response.body?.cancel();
    const invalid = await subscribe(gateway.url, alice.api_key, '?user_id=nope');
    assert.equal(invalid.response.status, 400);
    await invalid.response.body?.cancel();
  });

  test("a user's stream carries each change of their transactions, in the contract's shape", async () => {
    const { response, controller, reader } = await subscribe(gateway.url, alice.api_key);
    try {
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream\b/);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      assert.match(response.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
      const created = await deposit(alice, 12_34);
      const seen = await reader!.transactionsUntil(settled(created.id));
      // One change per event of the audit trail, each with the status that event left: usually
      // pending → processing → succeeded; on a loaded machine a bank call may time out first (an
      // attempt_failed, still pending) and the callback then settle it straight from pending.
      const shown = await request('GET', `/api/v1/deposits/${created.id}`, { key: alice.api_key });
      const { events, ...withoutEvents } = shown.json as { events: { status: string | null }[] };
      let status = 'pending';
      const expected = events.map((event) => (status = event.status ?? status));
      assert.deepEqual(
        seen.map((t) => t.status),
        expected,
      );
      assert.equal(expected.at(-1), 'succeeded');
      assert.deepEqual(seen.at(-1), withoutEvents);
    } finally {
      controller.abort();
    }
  });

  test("another user's transactions never arrive; the admin sees everyone's, or one user's", async () => {
    const own = await subscribe(gateway.url, alice.api_key);
    const everyone = await subscribe(gateway.url, ADMIN_KEY);
    const onlyBob = await subscribe(gateway.url, ADMIN_KEY, `?user_id=${bob.id}`);
    try {
      const bobs = await deposit(bob, 5_00);
      await eventually(async () => {
        const shown = await request('GET', `/api/v1/deposits/${bobs.id}`, { key: bob.api_key });
        return shown.json.status === 'succeeded' ? true : undefined;
      });
      const alices = await deposit(alice, 7_00);
      const seenByAlice = await own.reader!.transactionsUntil(settled(alices.id));
      assert.deepEqual([...new Set(seenByAlice.map((t) => t.user_id))], [alice.id]);

      const seenByAdmin = await everyone.reader!.transactionsUntil(settled(alices.id));
      assert.ok(seenByAdmin.some(settled(bobs.id)));
      assert.deepEqual([...new Set(seenByAdmin.map((t) => t.user_id))].sort(), [alice.id, bob.id].sort());

      const seenForBob = await onlyBob.reader!.transactionsUntil(settled(bobs.id));
      assert.deepEqual([...new Set(seenForBob.map((t) => t.user_id))], [bob.id]);
    } finally {
      for (const stream of [own, everyone, onlyBob]) stream.controller.abort();
    }
  });

  test('closing the gateway ends open streams at once: it does not wait SHUTDOWN_TIMEOUT_MS for them', async () => {
    const { response, reader } = await subscribe(gateway.url, alice.api_key);
    assert.equal(response.status, 200);
    assert.deepEqual(await reader!.next(), { event: undefined, data: undefined, comments: [] });
    const started = Date.now();
    const closed = gateway.close();
    const last = await reader!.next(1000);
    assert.deepEqual(last !== 'end' && last.comments, ['end (closed)']);
    assert.equal(await reader!.next(1000), 'end');
    await closed;
    // Without the feed ending them, open streams hold the server until SHUTDOWN_TIMEOUT_MS.
    assert.ok(Date.now() - started < SHUTDOWN_TIMEOUT_MS / 2, `close took ${Date.now() - started} ms`);
  });
});

describe('the event stream route, on its own', () => {
  const log = createLogger('silent');
  const users = { findById: () => Promise.resolve(undefined) } as unknown as UserStore;

  /** The route behind a stand-in for authentication: the `x-caller` header names a user. */
  async function serve(options: { heartbeat_ms?: number; lifetime_ms?: number; per_owner?: number } = {}) {
    const feed = createTransactionFeed({
      subscribers_max: 10,
      subscribers_per_owner_max: options.per_owner ?? 10,
      buffer_max: 10,
      log,
    });
    const app = createApp({
      log,
      middleware: [
        async (ctx, next) => {
          const id = ctx.get('x-caller');
          if (id) ctx.state.caller = { kind: 'user', id } satisfies Caller;
          await next();
        },
      ],
      routers: [
        eventRoutes({
          feed,
          users,
          heartbeat_ms: options.heartbeat_ms ?? 60_000,
          lifetime_ms: options.lifetime_ms ?? 60_000,
          retry_ms: 3000,
          log,
        }),
      ],
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const open = (caller: string = crypto.randomUUID()) =>
      fetch(`${url}/api/v1/events`, { headers: { 'x-caller': caller }, signal: AbortSignal.timeout(scaled(5000)) });
    const close = () => {
      feed.close();
      server.closeAllConnections();
      server.close();
    };
    return { feed, open, close };
  }

  test('a quiet stream sends a heartbeat comment; it ends after its lifetime', async () => {
    const served = await serve({ heartbeat_ms: 50, lifetime_ms: 400 });
    try {
      const reader = sseReader((await served.open()).body!);
      assert.deepEqual(await reader.next(), { event: undefined, data: undefined, comments: [] });
      assert.deepEqual(await reader.next(1000), { event: undefined, data: undefined, comments: ['heartbeat'] });
      let last: Frame | 'end';
      do last = await reader.next(2000);
      while (last !== 'end' && last.comments[0] === 'heartbeat');
      assert.deepEqual(last !== 'end' && last.comments, ['end (unsubscribed)']);
      assert.equal(await reader.next(), 'end');
    } finally {
      served.close();
    }
  });

  test('streams are bounded per caller (503), and a client that leaves frees its place', async () => {
    const served = await serve({ per_owner: 1 });
    try {
      const caller = crypto.randomUUID();
      const open = () => served.open(caller);
      const first = await open();
      assert.equal(first.status, 200);
      const second = await open();
      assert.equal(second.status, 503);
      assert.equal(((await second.json()) as { error: string }).error, 'stream_limit_reached');
      assert.ok(Number(second.headers.get('retry-after')) >= 1);
      await first.body?.cancel();
      await eventually(() => Promise.resolve(served.feed.size() === 0 ? true : undefined));
      const third = await open();
      assert.equal(third.status, 200);
      await third.body?.cancel();
    } finally {
      served.close();
    }
  });
});
