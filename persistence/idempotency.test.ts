import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { testDatabaseUrl } from '../test/support/database.ts';
import { createIdempotencyStore, type IdempotencyRecord } from './idempotency.ts';
import { createSql, type Sql } from './sql.ts';

let sql: Sql;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'idempotency-test' });
});
after(() => sql.end());

/** The real pool, counting the statements sent through it. */
function counting(real: Sql): { sql: Sql; statements: () => number } {
  let statements = 0;
  const sql = new Proxy(real, {
    apply(target, self, args: Parameters<Sql>) {
      statements += 1;
      return Reflect.apply(target, self, args) as unknown;
    },
  });
  return { sql, statements: () => statements };
}

const record = (caller: string, key: string, body: string): IdempotencyRecord => ({
  caller,
  key,
  fingerprint: `fp-${body}`,
  user_id: null,
  status_code: 202,
  body,
});

test('the lookups of one moment share one query, and each gets its own answer', async () => {
  const [alice, bob] = [`user-${randomUUID()}`, `user-${randomUUID()}`];
  const store = createIdempotencyStore(sql, 24);
  await store.insert(record(alice, 'k1', 'alice-1'));
  await store.insert(record(bob, 'k1', 'bob-1'));
  await store.insert(record(alice, 'old', 'expired'));
  await sql`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE caller = ${alice} AND key = 'old'`;

  const watched = counting(sql);
  const batched = createIdempotencyStore(watched.sql, 24);
  const asked: [string, string][] = [
    [alice, 'k1'],
    [bob, 'k1'],
    [alice, 'k1'],
    [alice, 'old'],
    [alice, 'missing'],
    [bob, 'k2'],
    ...Array.from({ length: 40 }, (_, i): [string, string] => [alice, `none-${i}`]),
  ];
  const found = await Promise.all(asked.map(([caller, key]) => batched.find(caller, key)));
  assert.equal(watched.statements(), 1);
  assert.deepEqual(
    found.slice(0, 6).map((r) => r?.body),
    ['alice-1', 'bob-1', 'alice-1', undefined, undefined, undefined],
  );
  assert.deepEqual(found[0], record(alice, 'k1', 'alice-1'));
  assert.ok(found.slice(6).every((r) => r === undefined));

  // A lookup of a later moment is a query of its own.
  assert.equal((await batched.find(bob, 'k1'))?.body, 'bob-1');
  assert.equal(watched.statements(), 2);
});

test('a failed query fails every lookup that shared it', async () => {
  const closed = createSql(await testDatabaseUrl(), { pool_max: 1, application_name: 'idempotency-test-closed' });
  await closed.end();
  const store = createIdempotencyStore(closed, 24);
  const results = await Promise.allSettled([store.find('a', 'k'), store.find('b', 'k')]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );
});
