import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createIdempotencyStore } from '../persistence/idempotency.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { testDatabaseUrl } from '../test/support/database.ts';
import { ApiError } from './errors.ts';
import { createIdempotencyGate } from './idempotency.ts';

let sql: Sql;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'idempotency-gate-test' });
});
after(() => sql.end());

test('a request whose lookup finds the pending lookups full is answered 503 storage_unavailable, not run', async () => {
  const gate = createIdempotencyGate(createIdempotencyStore(sql, 24, { lookups_pending_max: 1 }), 1000);
  let ran = 0;
  const handler = () => {
    ran += 1;
    return Promise.resolve({ response: { status: 202, body: '{}' }, replayed: false });
  };
  // The first takes the one pending lookup; the second, asked in the same moment, finds none left.
  const [first, second] = await Promise.allSettled([
    gate.run({ caller: 'u', key: 'k1', fingerprint: 'f1' }, handler),
    gate.run({ caller: 'u', key: 'k2', fingerprint: 'f2' }, handler),
  ]);
  assert.equal(first.status, 'fulfilled');
  assert.ok(second.status === 'rejected');
  const error: unknown = second.reason;
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 503);
  assert.equal(error.code, 'storage_unavailable');
  assert.ok(error.headers['Retry-After']);
  assert.equal(ran, 1, 'the refused request did not run');
  assert.equal(gate.inFlightCount(), 0);
});
