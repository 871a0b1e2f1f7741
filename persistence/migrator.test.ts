import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import postgres from 'postgres';
import { migrate } from './migrator.ts';
import { createSql, type Sql } from './sql.ts';
import { createUserStore } from './users.ts';

const MIGRATIONS = new URL('./migrations/', import.meta.url).pathname;
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

test('004 moves every user key into api_keys: a key issued before it authenticates after it', async () => {
  // The migrations run in a schema of their own, first up to 003, then 004, as an upgrade would.
  const schema = `upgrade_${process.pid}`;
  const admin = createSql(await testDatabaseUrl(), { pool_max: 1, application_name: 'migrator-test' });
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  const sql = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {}, connection: { search_path: schema } });
  const before = await mkdtemp(join(tmpdir(), 'migrations-'));
  try {
    for (const name of (await readdir(MIGRATIONS)).filter((file) => file < '004')) {
      await copyFile(join(MIGRATIONS, name), join(before, name));
    }
    await migrate(sql as unknown as Sql, before);
    const hash = createHash('sha256').update('pgw_issued_before_004_0123456789').digest();
    const id = crypto.randomUUID();
    await sql`INSERT INTO users (id, name, email, api_key_hash) VALUES (${id}, 'Old', 'old@example.test', ${hash})`;

    // Then every later migration, as an upgrade from 003 to today applies them.
    const later = (await readdir(MIGRATIONS)).filter((file) => file.endsWith('.sql') && file >= '004').sort();
    assert.equal(later[0], '004_api_keys.sql');
    assert.deepEqual(await migrate(sql as unknown as Sql, MIGRATIONS), later);
    const keys = await sql`SELECT user_id, key_hash, prefix, revoked_at FROM api_keys`;
    assert.deepEqual([...keys], [{ user_id: id, key_hash: hash, prefix: null, revoked_at: null }]);
    const users = createUserStore(sql as unknown as Sql, { insert: () => Promise.resolve(true) });
    assert.equal((await users.findByKeyHash(hash))?.id, id);
    const columns = await sql`
      SELECT column_name FROM information_schema.columns WHERE table_schema = ${schema} AND table_name = 'users'`;
    assert.ok(!columns.some((column) => column.column_name === 'api_key_hash'), 'users keep no digest');
  } finally {
    await sql.end();
    await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
    await rm(before, { recursive: true, force: true });
  }
});
