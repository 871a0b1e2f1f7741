import assert from 'node:assert/strict';
import { test } from 'node:test';
import { migrate } from './migrator.ts';
import { createSql } from './sql.ts';
import { testDatabaseUrl } from '../test/support/database.ts';

test('migrating twice applies nothing the second time and records every file', async () => {
  const sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'migrator-test' });
  try {
    assert.deepEqual(await migrate(sql), []);
    const rows = await sql<{ name: string }[]>`SELECT name FROM schema_migrations ORDER BY name`;
    assert.ok(rows.some((row) => row.name === '001_schema.sql'));
  } finally {
    await sql.end();
  }
});

test('the database refuses what the domain forbids', async () => {
  const sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'migrator-test' });
  const row = (amount: bigint, status: string) => ({
    id: crypto.randomUUID(),
    user_id: crypto.randomUUID(),
    type: 'deposit',
    amount,
    currency: 'USD',
    status,
    created_at: new Date(),
    updated_at: new Date(),
  });
  try {
    await assert.rejects(sql`INSERT INTO transactions ${sql(row(0n, 'pending'))}`, /check/i);
    await assert.rejects(sql`INSERT INTO transactions ${sql(row(-5n, 'pending'))}`, /check/i);
    await assert.rejects(sql`INSERT INTO transactions ${sql(row(5n, 'lost'))}`, /check/i);
    const user = crypto.randomUUID();
    const event = {
      user_id: user,
      seq: 1n,
      shard: 0,
      epoch: 1n,
      type: 't',
      payload: sql.json({}),
      created_at: new Date(),
    };
    await sql`INSERT INTO journal ${sql(event)}`;
    await assert.rejects(sql`INSERT INTO journal ${sql(event)}`, /duplicate key/);
  } finally {
    await sql.end();
  }
});
