import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, mock, test } from 'node:test';
import Router from '@koa/router';
import { createLogger } from '../logger.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { createIdempotencyStore } from '../persistence/idempotency.ts';
import { createUserStore, type UserStore } from '../persistence/users.ts';
import { testDatabaseUrl } from '../test/support/database.ts';
import { createApp } from './app.ts';
import { authenticate, createKeyCache, hashApiKey, newApiKey, requireCaller, type KeyCacheOptions } from './auth.ts';

const ADMIN_KEY = 'test_admin_key_0123456789';

let sql: Sql;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'auth-test' });
});
after(() => sql.end());

/** The real users table, with a count of the key lookups that reached Postgres. */
function countingUsers(): { users: UserStore; lookups: () => number } {
  const real = createUserStore(sql, createIdempotencyStore(sql, 24));
  let lookups = 0;
  const users: UserStore = {
    ...real,
    findByKeyHash: (hash) => {
      lookups += 1;
      return real.findByKeyHash(hash);
    },
  };
  return { users, lookups: () => lookups };
}

async function newUser(users: UserStore): Promise<{ id: string; key: string }> {
  const { key, hash, prefix } = newApiKey();
  const id = randomUUID();
  await users.insert({ id, name: 'cache', email: `${id}@example.test`, api_key: { id: randomUUID(), hash, prefix } });
  return { id, key };
}

/** A Koa app with the real authentication in front of one route that names the caller. */
async function startApp(users: UserStore, cache: KeyCacheOptions) {
  const router = new Router();
  router.get('/me', (ctx) => {
    ctx.body = { caller: requireCaller(ctx.state).id };
  });
  const app = createApp({
    log: createLogger('silent'),
    middleware: [authenticate(createKeyCache(users, cache), ADMIN_KEY)],
    routers: [router],
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/me`;
  const callWith = async (authorization: string) => {
    const response = await fetch(url, { headers: { authorization } });
    return { status: response.status, json: (await response.json()) as { caller?: string } };
  };
  return {
    call: (key: string) => callWith(`Bearer ${key}`),
    callWith,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test('a key is looked up in Postgres once per TTL; a revoked key stops working when its entry expires', async () => {
  const { users, lookups } = countingUsers();
  const user = await newUser(users);
  const app = await startApp(users, { ttl_ms: 300 });
  // The cache's clock only moves when the test says: a loaded machine once took longer than the TTL
  // over the five calls below, and they were looked up three times.
  mock.timers.enable({ apis: ['Date'], now: Date.now() });
  try {
    for (let i = 0; i < 5; i += 1)
      assert.deepEqual(await app.call(user.key), { status: 200, json: { caller: user.id } });
    assert.equal(lookups(), 1);
    await sql`UPDATE users SET revoked_at = now() WHERE id = ${user.id}`;
    // Within the TTL the cached key still authenticates: the staleness bound the README documents.
    mock.timers.tick(299);
    assert.equal((await app.call(user.key)).status, 200);
    mock.timers.tick(1);
    assert.equal((await app.call(user.key)).status, 401);
    assert.equal(lookups(), 2);
  } finally {
    mock.timers.reset();
    await app.close();
  }
});

test('with a TTL of 0 every request asks Postgres, and a revocation takes effect at once', async () => {
  const { users, lookups } = countingUsers();
  const user = await newUser(users);
  const app = await startApp(users, { ttl_ms: 0 });
  try {
    assert.equal((await app.call(user.key)).status, 200);
    assert.equal((await app.call(user.key)).status, 200);
    assert.equal(lookups(), 2);
    await sql`UPDATE users SET revoked_at = now() WHERE id = ${user.id}`;
    assert.equal((await app.call(user.key)).status, 401);
  } finally {
    await app.close();
  }
});

test('unknown keys are not cached: a key issued after a failed attempt works at once', async () => {
  const { users, lookups } = countingUsers();
  const { key, hash, prefix } = newApiKey();
  const app = await startApp(users, { ttl_ms: 60_000 });
  try {
    assert.equal((await app.call(key)).status, 401);
    assert.equal((await app.call(key)).status, 401);
    assert.equal(lookups(), 2);
    const id = randomUUID();
    await users.insert({ id, name: 'late', email: `${id}@example.test`, api_key: { id: randomUUID(), hash, prefix } });
    assert.deepEqual(await app.call(key), { status: 200, json: { caller: id } });
  } finally {
    await app.close();
  }
});

test('the cache keeps at most entries_max keys, dropping the least recently used', async () => {
  const { users, lookups } = countingUsers();
  const cache = createKeyCache(users, { ttl_ms: 60_000, entries_max: 2 });
  const [a, b, c] = [await newUser(users), await newUser(users), await newUser(users)];
  const find = async (user: { id: string; key: string }) => (await cache.find(hashApiKey(user.key)))?.id;
  assert.equal(await find(a), a.id);
  assert.equal(await find(b), b.id);
  assert.equal(await find(a), a.id); // a is now the most recently used
  assert.equal(lookups(), 2);
  assert.equal(await find(c), c.id); // evicts b
  assert.equal(cache.size(), 2);
  assert.equal(await find(a), a.id);
  assert.equal(lookups(), 3);
  assert.equal(await find(b), b.id);
  assert.equal(lookups(), 4);
});

test('concurrent requests with an uncached key share one query', async () => {
  const { users, lookups } = countingUsers();
  const user = await newUser(users);
  const cache = createKeyCache(users, { ttl_ms: 60_000 });
  const hash = hashApiKey(user.key);
  const found = await Promise.all(Array.from({ length: 20 }, () => cache.find(hash)));
  assert.ok(found.every((owner) => owner?.id === user.id));
  assert.equal(lookups(), 1);
});

test('the Bearer scheme is case-insensitive (RFC 7235); another scheme, or none, is refused', async () => {
  const { users } = countingUsers();
  const app = await startApp(users, {});
  try {
    const user = await newUser(users);
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      const asAdmin = await app.callWith(`${scheme} ${ADMIN_KEY}`);
      assert.deepEqual([asAdmin.status, asAdmin.json.caller], [200, 'admin'], scheme);
      const asUser = await app.callWith(`${scheme}  ${user.key}`);
      assert.deepEqual([asUser.status, asUser.json.caller], [200, user.id], `${scheme} and two spaces`);
    }
    for (const header of [`Basic ${ADMIN_KEY}`, `Bearer${ADMIN_KEY}`, ADMIN_KEY, `Bearer ${ADMIN_KEY} extra`]) {
      assert.equal((await app.callWith(header)).status, 401, header);
    }
  } finally {
    await app.close();
  }
});

test('bad cache options are refused', () => {
  const { users } = countingUsers();
  assert.throws(() => createKeyCache(users, { ttl_ms: -1 }), RangeError);
  assert.throws(() => createKeyCache(users, { entries_max: 0 }), RangeError);
});
