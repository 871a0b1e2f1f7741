import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { testDatabaseUrl } from '../test/support/database.ts';
import { createIdempotencyStore, IdempotencyLookupsFull, type IdempotencyRecord } from './idempotency.ts';
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
  answer: { status_code: 202, body },
});

const bodyOf = (found: IdempotencyRecord | undefined) =>
  found && 'body' in found.answer ? found.answer.body : undefined;

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
  assert.deepEqual(found.slice(0, 6).map(bodyOf), ['alice-1', 'bob-1', 'alice-1', undefined, undefined, undefined]);
  assert.deepEqual(found[0], record(alice, 'k1', 'alice-1'));
  assert.ok(found.slice(6).every((r) => r === undefined));

  // A lookup of a later moment is a query of its own.
  assert.equal(bodyOf(await batched.find(bob, 'k1')), 'bob-1');
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

test('past lookups_pending_max a lookup fails at once; lookups waiting on a query count too', async () => {
  const store = createIdempotencyStore(sql, 24, { lookups_pending_max: 2 });
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const held = new Promise<void>((resolve) => (locked = resolve));
  // Every read of the table waits behind this lock: the lookups' query is sent and stays unanswered.
  const lock = sql.begin(async (tx) => {
    await tx`LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE`;
    locked();
    await released;
  });
  await held;
  const waiting = [store.find('a', 'k1'), store.find('b', 'k1')];
  await assert.rejects(store.find('c', 'k1'), (error: unknown) => {
    assert.ok(error instanceof IdempotencyLookupsFull);
    assert.equal(error.code, 'IDEMPOTENCY_LOOKUPS_FULL');
    return true;
  });
  // A turn later the two are in a query, still unanswered: still full.
  await new Promise((resolve) => setTimeout(resolve, 50));
  await assert.rejects(store.find('d', 'k1'), IdempotencyLookupsFull);

  release();
  await lock;
  assert.deepEqual(await Promise.all(waiting), [undefined, undefined]);
  assert.equal(await store.find('e', 'k1'), undefined, 'room again once the query answered');
});

test("an account command's outcome is kept as a value and read back as it was stored; a record holds one answer", async () => {
  const caller = `user-${randomUUID()}`;
  const store = createIdempotencyStore(sql, 24);
  // Keys in an order no canonical form would give them: a replay repeats them as they were written.
  const note = { zeta: 'last first', alpha: { y: 1, b: 2 } };
  const outcome = { outcome: { kind: 'rejected', code: 'insufficient_funds' }, request_id: 'req-1', note };
  assert.equal(await store.insert({ caller, key: 'k', fingerprint: 'fp', user_id: null, answer: { outcome } }), true);
  const found = await store.find(caller, 'k');
  assert.equal(JSON.stringify(found?.answer), JSON.stringify({ outcome }));
  // The key is taken: a second answer for it is not stored.
  const other = { outcome: { ...outcome, request_id: 'req-2' } };
  assert.equal(await store.insert({ caller, key: 'k', fingerprint: 'fp', user_id: null, answer: other }), false);
  assert.deepEqual((await store.find(caller, 'k'))?.answer, { outcome });
  // A row with both a response and an outcome (or neither) is refused by the table itself.
  await assert.rejects(
    sql`INSERT INTO idempotency_keys (caller, key, fingerprint, status_code, body, outcome, expires_at)
        VALUES (${caller}, 'both', 'fp', 202, '{}', '{}'::jsonb, now() + interval '1 hour')`,
    /idempotency_keys_one_answer/,
  );
  await assert.rejects(
    sql`INSERT INTO idempotency_keys (caller, key, fingerprint, expires_at)
        VALUES (${caller}, 'neither', 'fp', now() + interval '1 hour')`,
    /idempotency_keys_one_answer/,
  );
});
