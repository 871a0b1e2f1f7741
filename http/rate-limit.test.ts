import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import Router from '@koa/router';
import { createLogger } from '../logger.ts';
import { rateLimitCounters } from '../persistence/rate-limit-counters.ts';
import { createRedis } from '../persistence/redis.ts';
import type { UserStore } from '../persistence/users.ts';
import { createApp } from './app.ts';
import { authenticate, createKeyCache, hashApiKey, requireCaller } from './auth.ts';
import { addressKey, authFailureLimit, createAuthFailures } from './auth-failure-limit.ts';
import { createApiLimits, rateLimits } from './rate-limit.ts';
import { REDIS_RETRY_MS, type RedisDownPolicy } from './rate-limit-store.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const UNREACHABLE_REDIS_URL = 'redis://127.0.0.1:1';
const ADMIN_KEY = 'test_admin_key_0123456789';

const alice = { id: randomUUID(), key: 'pgw_alice_key_0123456789' };
const bob = { id: randomUUID(), key: 'pgw_bob_key_0123456789ab' };

// Authentication is the real middleware; only the users table behind it is replaced by two rows.
const users = {
  findByKeyHash: (hash: Buffer) => {
    const user = [alice, bob].find((candidate) => hashApiKey(candidate.key).equals(hash));
    if (!user) return Promise.resolve(undefined);
    return Promise.resolve({
      id: user.id,
      name: 'x',
      email: 'x@example.test',
      created_at: new Date(),
      revoked_at: null,
      api_key_hash: hash,
    });
  },
} as unknown as UserStore;

// The real routes are not written yet: stubs with their paths answer 200 to any authenticated caller.
function stubRoutes(): Router[] {
  const api = new Router({ prefix: '/api/v1' });
  const paths = [
    '/users/:user_id/balance',
    '/users/:user_id/transactions',
    '/deposits',
    '/withdrawals',
    '/deposits/:id',
  ];
  for (const path of paths) {
    api.get(path, (ctx) => {
      ctx.body = { caller: requireCaller(ctx.state).id };
    });
  }
  const open = new Router();
  open.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  open.post('/webhooks/bank-callback', (ctx) => {
    ctx.status = 401;
    ctx.body = { error: 'invalid_signature' };
  });
  return [api, open];
}

interface Setup {
  key_prefix: string;
  redis_url?: string;
  global?: number;
  balance?: number;
  transactions?: number;
  auth_failures?: number;
  on_redis_down?: RedisDownPolicy;
  timeout_ms?: number;
}

interface Instance {
  url: string;
  /** The log lines this instance wrote, parsed. */
  logs: Array<{ level: string; msg: string; limits?: string }>;
  close(): Promise<void>;
}

const running: Instance[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((instance) => instance.close()));
});

/** One gateway edge: its own Redis client and server, the limits in the order gateway.ts uses. */
async function startInstance(setup: Setup): Promise<Instance> {
  const redis = createRedis(setup.redis_url ?? REDIS_URL, 'rate-limit-test');
  redis.on('error', () => {});
  if (!setup.redis_url || setup.redis_url !== UNREACHABLE_REDIS_URL) await once(redis, 'ready');
  const logs: Instance['logs'] = [];
  const log = createLogger('info', {
    write: (line: string) => {
      logs.push(JSON.parse(line));
    },
  });
  const shared = {
    counters: rateLimitCounters(redis),
    key_prefix: setup.key_prefix,
    log,
    on_redis_down: setup.on_redis_down,
  };
  const app = createApp({
    log,
    middleware: [
      authFailureLimit(
        createAuthFailures({
          ...shared,
          max_per_min: setup.auth_failures ?? 20,
          timeout_ms: setup.timeout_ms,
        }),
      ),
      authenticate(createKeyCache(users), ADMIN_KEY),
      rateLimits(
        createApiLimits({
          ...shared,
          global_per_min: setup.global ?? 1000,
          balance_per_min: setup.balance ?? 10,
          transactions_per_min: setup.transactions ?? 20,
          timeout_ms: setup.timeout_ms,
        }),
      ),
    ],
    routers: stubRoutes(),
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const instance: Instance = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    logs,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      redis.disconnect();
    },
  };
  running.push(instance);
  return instance;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One request on its own connection; `from` picks the client's loopback address. */
function call(
  instance: Instance,
  path: string,
  options: { key?: string; method?: string; from?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = options.key ? { authorization: `Bearer ${options.key}` } : {};
    const request = httpRequest(
      instance.url + path,
      { method: options.method ?? 'GET', agent: false, localAddress: options.from, headers },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text,
            json: text ? JSON.parse(text) : undefined,
          }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

const prefix = () => `test:${randomUUID()}`;
const balanceOf = (user: { id: string }) => `/api/v1/users/${user.id}/balance`;

function assertRateLimited(answer: Answer): void {
  assert.equal(answer.status, 429);
  const retryAfter = Number(answer.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  const expected =
    '{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.",' +
    `"retry_after":${retryAfter},"request_id":"${String(answer.headers['x-request-id'])}"}`;
  assert.equal(answer.text, expected);
  assert.equal(answer.headers['x-ratelimit-remaining'], '0');
}

describe('per-user limits', () => {
  test('the 11th balance request in a minute gets 429 with the contract body and headers', async () => {
    const gateway = await startInstance({ key_prefix: prefix() });
    for (let i = 1; i <= 10; i += 1) {
      const answer = await call(gateway, balanceOf(alice), { key: alice.key });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['x-ratelimit-limit'], '10');
      assert.equal(answer.headers['x-ratelimit-remaining'], String(10 - i));
      const reset = Number(answer.headers['x-ratelimit-reset']);
      const now = Date.now() / 1000;
      assert.ok(reset >= now && reset <= now + 61, `X-RateLimit-Reset ${reset}`);
      assert.equal(answer.headers['ratelimit-policy'], '"balance";q=10;w=60, "global";q=1000;w=60');
      assert.match(String(answer.headers['ratelimit']), new RegExp(`^"balance";r=${10 - i};t=\\d+, "global";r=`));
      assert.equal(answer.headers['x-ratelimit-status'], undefined);
    }
    const limited = await call(gateway, balanceOf(alice), { key: alice.key });
    assertRateLimited(limited);
    assert.equal(limited.headers['x-ratelimit-limit'], '10');
    const reset = Number(limited.headers['x-ratelimit-reset']);
    assert.ok(Math.abs(reset - (Date.now() / 1000 + Number(limited.headers['retry-after']))) <= 2);
  });

  test('the three transaction lists share one limit; the 21st gets 429, a single transaction does not', async () => {
    const gateway = await startInstance({ key_prefix: prefix() });
    const lists = [`/api/v1/users/${alice.id}/transactions`, '/api/v1/deposits', '/api/v1/withdrawals?limit=5'];
    for (let i = 0; i < 20; i += 1) {
      const answer = await call(gateway, lists[i % 3]!, { key: alice.key });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['x-ratelimit-remaining'], String(19 - i));
    }
    assertRateLimited(await call(gateway, '/api/v1/withdrawals', { key: alice.key }));
    const one = await call(gateway, `/api/v1/deposits/${randomUUID()}`, { key: alice.key });
    assert.equal(one.status, 200);
    assert.equal(one.headers['x-ratelimit-limit'], '1000');
    assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
  });

  test('users are limited independently', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), balance: 2 });
    for (let i = 0; i < 2; i += 1)
      assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
    assertRateLimited(await call(gateway, balanceOf(alice), { key: alice.key }));
    const other = await call(gateway, balanceOf(bob), { key: bob.key });
    assert.equal(other.status, 200);
    assert.equal(other.headers['x-ratelimit-remaining'], '1');
  });

  test("a user's requests for someone else's resources count against the caller", async () => {
    const gateway = await startInstance({ key_prefix: prefix(), balance: 2 });
    for (let i = 0; i < 2; i += 1) await call(gateway, balanceOf(bob), { key: alice.key });
    assertRateLimited(await call(gateway, balanceOf(alice), { key: alice.key }));
    assert.equal((await call(gateway, balanceOf(bob), { key: bob.key })).status, 200);
  });

  test('the admin is counted per target user, apart from the users themselves', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), balance: 2, transactions: 1 });
    for (let i = 0; i < 2; i += 1)
      assert.equal((await call(gateway, balanceOf(alice), { key: ADMIN_KEY })).status, 200);
    assertRateLimited(await call(gateway, balanceOf(alice), { key: ADMIN_KEY }));
    assert.equal((await call(gateway, balanceOf(bob), { key: ADMIN_KEY })).status, 200);
    assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
    assert.equal((await call(gateway, `/api/v1/deposits?user_id=${alice.id}`, { key: ADMIN_KEY })).status, 200);
    assertRateLimited(await call(gateway, `/api/v1/deposits?user_id=${alice.id.toUpperCase()}`, { key: ADMIN_KEY }));
    assert.equal((await call(gateway, '/api/v1/deposits', { key: ADMIN_KEY })).status, 200);
  });

  test('another spelling of the path that the router accepts is counted the same', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), balance: 2 });
    assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
    assert.equal((await call(gateway, `${balanceOf(alice)}/`, { key: alice.key })).status, 200);
    assertRateLimited(await call(gateway, balanceOf(alice).toUpperCase(), { key: alice.key }));
    const head = await call(gateway, balanceOf(alice), { key: alice.key, method: 'HEAD' });
    assert.equal(head.status, 429);
    assert.ok(Number(head.headers['retry-after']) >= 1);
  });
});

describe('the global limit', () => {
  test('holds across users, and the headers report the most restrictive limit', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), global: 5 });
    for (let i = 0; i < 3; i += 1)
      assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
    const first = await call(gateway, balanceOf(bob), { key: bob.key });
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-ratelimit-limit'], '5');
    assert.equal(first.headers['x-ratelimit-remaining'], '1');
    assert.equal(first.headers['ratelimit-policy'], '"balance";q=10;w=60, "global";q=5;w=60');
    assert.equal((await call(gateway, `/api/v1/deposits/${randomUUID()}`, { key: bob.key })).status, 200);
    const limited = await call(gateway, balanceOf(bob), { key: bob.key });
    assertRateLimited(limited);
    assert.equal(limited.headers['x-ratelimit-limit'], '5');
  });

  test('an anonymous request counts against it and still gets its 401', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), global: 1 });
    const anonymous = await call(gateway, balanceOf(alice));
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers['x-ratelimit-limit'], '1');
    assertRateLimited(await call(gateway, balanceOf(alice), { key: alice.key }));
  });

  test('paths outside /api/v1 are not limited', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), global: 1 });
    await call(gateway, balanceOf(alice), { key: alice.key });
    const health = await call(gateway, '/health');
    assert.equal(health.status, 200);
    assert.equal(health.headers['x-ratelimit-limit'], undefined);
  });
});

describe('two instances sharing one Redis', () => {
  test('a per-user limit holds across them', async () => {
    const key_prefix = prefix();
    const instances = [
      await startInstance({ key_prefix, balance: 5 }),
      await startInstance({ key_prefix, balance: 5 }),
    ];
    for (let i = 0; i < 5; i += 1) {
      const answer = await call(instances[i % 2]!, balanceOf(alice), { key: alice.key });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['x-ratelimit-remaining'], String(4 - i));
    }
    assertRateLimited(await call(instances[1]!, balanceOf(alice), { key: alice.key }));
  });

  test('the global limit holds across them', async () => {
    const key_prefix = prefix();
    const instances = [await startInstance({ key_prefix, global: 5 }), await startInstance({ key_prefix, global: 5 })];
    const callers = [alice, bob];
    for (let i = 0; i < 5; i += 1) {
      const answer = await call(instances[i % 2]!, `/api/v1/deposits/${randomUUID()}`, { key: callers[i % 2]!.key });
      assert.equal(answer.status, 200);
    }
    assertRateLimited(await call(instances[1]!, `/api/v1/deposits/${randomUUID()}`, { key: bob.key }));
  });
});

/** A TCP relay to the real Redis that can hold every byte, so that Redis seems to hang. */
async function stallableRedis(): Promise<{ url: string; stall(): void; resume(): void; close(): Promise<void> }> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  const held: Array<() => void> = [];
  let stalled = false;
  const relay = (from: Socket, to: Socket) =>
    from.on('data', (chunk) => (stalled ? held.push(() => to.write(chunk)) : to.write(chunk)));
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => (client.destroy(), upstream.destroy()));
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stall: () => void (stalled = true),
    resume: () => {
      stalled = false;
      for (const write of held.splice(0)) write();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('when Redis is down', () => {
  test('per_instance (the default): limits are counted in memory, marked degraded, logged once', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), redis_url: UNREACHABLE_REDIS_URL, balance: 3 });
    for (let i = 1; i <= 3; i += 1) {
      const started = Date.now();
      const answer = await call(gateway, balanceOf(alice), { key: alice.key });
      assert.ok(Date.now() - started < 500, 'an unreachable Redis must not slow the request');
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['x-ratelimit-status'], 'degraded');
      assert.equal(answer.headers['x-ratelimit-limit'], '3');
      assert.equal(answer.headers['x-ratelimit-remaining'], String(3 - i));
    }
    const limited = await call(gateway, balanceOf(alice), { key: alice.key });
    assertRateLimited(limited);
    assert.equal(limited.headers['x-ratelimit-status'], 'degraded');
    // One line per middleware for the whole outage, not one per request.
    const warnings = gateway.logs.filter((line) => line.level === 'warn');
    assert.deepEqual(
      warnings.map((line) => [line.limits, line.msg]),
      [
        ['auth_failures', 'rate limits cannot reach redis'],
        ['api', 'rate limits cannot reach redis'],
      ],
    );
  });

  test('allow: requests pass unlimited, marked unavailable', async () => {
    const gateway = await startInstance({
      key_prefix: prefix(),
      redis_url: UNREACHABLE_REDIS_URL,
      balance: 1,
      on_redis_down: 'allow',
    });
    for (let i = 0; i < 3; i += 1) {
      const answer = await call(gateway, balanceOf(alice), { key: alice.key });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['x-ratelimit-status'], 'unavailable');
      assert.equal(answer.headers['x-ratelimit-limit'], undefined);
    }
  });

  test('deny: requests get 503 rate_limit_unavailable', async () => {
    const gateway = await startInstance({
      key_prefix: prefix(),
      redis_url: UNREACHABLE_REDIS_URL,
      on_redis_down: 'deny',
    });
    const answer = await call(gateway, balanceOf(alice), { key: alice.key });
    assert.equal(answer.status, 503);
    assert.equal(answer.json.error, 'rate_limit_unavailable');
    assert.equal(answer.json.request_id, answer.headers['x-request-id']);
    assert.ok(Number(answer.headers['retry-after']) >= 1);
  });

  test('a Redis that hangs costs a request the timeout once, and counting returns to Redis after', async () => {
    const redis = await stallableRedis();
    try {
      const timeout_ms = 300;
      const gateway = await startInstance({ key_prefix: prefix(), redis_url: redis.url, timeout_ms });
      assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).headers['x-ratelimit-remaining'], '9');
      redis.stall();
      let started = Date.now();
      const first = await call(gateway, balanceOf(alice), { key: alice.key });
      // The auth-failure check and the API limits each wait out one timeout, then count in memory.
      assert.ok(Date.now() - started < 3 * timeout_ms, `answered after ${Date.now() - started} ms`);
      assert.equal(first.status, 200);
      assert.equal(first.headers['x-ratelimit-status'], 'degraded');
      started = Date.now();
      const second = await call(gateway, balanceOf(alice), { key: alice.key });
      assert.ok(Date.now() - started < timeout_ms / 2, `answered after ${Date.now() - started} ms`);
      assert.equal(second.headers['x-ratelimit-status'], 'degraded');
      redis.resume();
      // The store keeps counting in memory for REDIS_RETRY_MS after a failure: that pause is the behaviour.
      await new Promise((resolve) => setTimeout(resolve, REDIS_RETRY_MS + 100));
      const back = await call(gateway, balanceOf(alice), { key: alice.key });
      assert.equal(back.status, 200);
      assert.equal(back.headers['x-ratelimit-status'], undefined);
      // The first stalled consume reached Redis once it resumed, so Redis holds three.
      assert.equal(back.headers['x-ratelimit-remaining'], '7');
      assert.deepEqual(
        gateway.logs.filter((line) => line.limits !== undefined).map((line) => [line.limits, line.msg]),
        [
          ['auth_failures', 'rate limits cannot reach redis'],
          ['api', 'rate limits cannot reach redis'],
          ['auth_failures', 'rate limits are counted in redis again'],
          ['api', 'rate limits are counted in redis again'],
        ],
      );
    } finally {
      await redis.close();
    }
  });
});

describe('failed authentication', () => {
  const bad = 'pgw_wrong_key_0123456789';

  test('after the limit of 401s from an address, even a valid key gets 429; other addresses do not', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), auth_failures: 3 });
    for (let i = 0; i < 3; i += 1) assert.equal((await call(gateway, balanceOf(alice), { key: bad })).status, 401);
    const blocked = await call(gateway, balanceOf(alice), { key: alice.key });
    assertRateLimited(blocked);
    assert.equal(blocked.headers['x-ratelimit-limit'], '3');
    assert.equal(blocked.headers['ratelimit-policy'], '"auth_failures";q=3;w=60');
    assertRateLimited(await call(gateway, '/health'));
    const elsewhere = await call(gateway, balanceOf(alice), { key: alice.key, from: '127.0.0.2' });
    assert.equal(elsewhere.status, 200);
  });

  test('only failures count, including a route answering 401 to an anonymous request', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), auth_failures: 2 });
    for (let i = 0; i < 5; i += 1)
      assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
    assert.equal((await call(gateway, balanceOf(alice))).status, 401);
    assert.equal((await call(gateway, balanceOf(alice), { key: alice.key })).status, 200);
    assert.equal((await call(gateway, '/health', { key: 'bad key!' })).status, 401);
    assertRateLimited(await call(gateway, balanceOf(alice), { key: alice.key }));
  });

  test('the count is shared across instances', async () => {
    const key_prefix = prefix();
    const [one, two] = [
      await startInstance({ key_prefix, auth_failures: 3 }),
      await startInstance({ key_prefix, auth_failures: 3 }),
    ];
    await call(one, balanceOf(alice), { key: bad });
    await call(two, balanceOf(alice), { key: bad });
    await call(one, balanceOf(alice), { key: bad });
    assertRateLimited(await call(two, balanceOf(alice), { key: alice.key }));
  });

  test('every path counts: a refused webhook signature is a failed authentication too', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), auth_failures: 2 });
    for (let i = 0; i < 2; i += 1) {
      assert.equal((await call(gateway, '/webhooks/bank-callback', { method: 'POST' })).status, 401);
    }
    assertRateLimited(await call(gateway, '/webhooks/bank-callback', { method: 'POST' }));
    assertRateLimited(await call(gateway, balanceOf(alice), { key: alice.key }));
    assert.equal((await call(gateway, '/webhooks/bank-callback', { method: 'POST', from: '127.0.0.2' })).status, 401);
  });

  test('with Redis unreachable it is counted per instance', async () => {
    const gateway = await startInstance({ key_prefix: prefix(), redis_url: UNREACHABLE_REDIS_URL, auth_failures: 2 });
    for (let i = 0; i < 2; i += 1) assert.equal((await call(gateway, balanceOf(alice), { key: bad })).status, 401);
    const blocked = await call(gateway, balanceOf(alice), { key: alice.key });
    assertRateLimited(blocked);
    assert.equal(blocked.headers['x-ratelimit-status'], 'degraded');
  });

  test('an address is counted as IPv4, or IPv6 by its /64', () => {
    assert.equal(addressKey('203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('2001:db8:0:1:aaaa::1'), '2001:db8:0:1::/64');
    assert.equal(addressKey('2001:0DB8:0000:0001:ffff:ffff:ffff:ffff'), '2001:db8:0:1::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey(''), 'unknown');
  });
});
