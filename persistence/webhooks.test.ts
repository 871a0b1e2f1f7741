import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { testDatabaseUrl } from '../test/support/database.ts';
import { createIdempotencyStore } from './idempotency.ts';
import { startReaper } from './reaper.ts';
import { createSql, type Sql } from './sql.ts';
import { createWebhookStore } from './webhooks.ts';

let sql: Sql;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'webhooks-test' });
});
after(() => sql.end());

/** A user with one endpoint, and deliveries to it in the given states, finished the given days ago. */
async function endpointWith(deliveries: { status: string; finished_days_ago: number | null }[]) {
  const user_id = randomUUID();
  const endpoint_id = randomUUID();
  await sql`INSERT INTO users (id, name, email) VALUES (${user_id}, 'Merchant', ${`${user_id}@example.com`})`;
  await sql`
    INSERT INTO webhook_endpoints (id, user_id, url, event_types, secret)
    VALUES (${endpoint_id}, ${user_id}, 'https://merchant.example/hook', '{*}', 'whsec_test')`;
  const ids: string[] = [];
  for (const [i, delivery] of deliveries.entries()) {
    const [row] = await sql<{ id: string }[]>`
      INSERT INTO webhook_deliveries (endpoint_id, user_id, event_id, event_type, transaction_id, seq, data,
        created_at, status, completed_at)
      VALUES (${endpoint_id}, ${user_id}, ${`evt_${randomUUID()}`}, 'deposit.succeeded', ${randomUUID()}, ${i + 1},
        '{}', now() - interval '90 days', ${delivery.status},
        ${delivery.finished_days_ago === null ? null : sql`now() - make_interval(days => ${delivery.finished_days_ago})`})
      RETURNING id`;
    ids.push(row!.id);
  }
  return { endpoint_id, ids };
}

async function remaining(endpoint_id: string): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`SELECT id FROM webhook_deliveries WHERE endpoint_id = ${endpoint_id}`;
  return rows.map((row) => row.id).sort();
}

test('finished deliveries older than the retention are deleted; recent and pending ones stay', async () => {
  const store = createWebhookStore(sql, createIdempotencyStore(sql, 24));
  const { endpoint_id, ids } = await endpointWith([
    { status: 'succeeded', finished_days_ago: 40 },
    { status: 'failed', finished_days_ago: 31 },
    { status: 'succeeded', finished_days_ago: 29 },
    { status: 'failed', finished_days_ago: 1 },
    // Pending for 90 days (created then, never finished): still being retried, never deleted.
    { status: 'pending', finished_days_ago: null },
  ]);
  // Other tests' deliveries may be old too: only this endpoint's are looked at.
  while ((await store.purgeFinished(1000, 30)) === 1000);
  assert.deepEqual(await remaining(endpoint_id), [ids[2]!, ids[3]!, ids[4]!].sort());
});

test('the reaper deletes in bounded batches until one comes back short', async () => {
  const store = createWebhookStore(sql, createIdempotencyStore(sql, 24));
  const { endpoint_id, ids } = await endpointWith([
    ...Array.from({ length: 5 }, () => ({ status: 'succeeded', finished_days_ago: 60 })),
    { status: 'pending', finished_days_ago: null },
  ]);
  const limits: number[] = [];
  const reaper = startReaper(
    (limit) => {
      limits.push(limit);
      return store.purgeFinished(limit, 30);
    },
    { interval_ms: 3_600_000, batch_max: 2, onError: (error) => assert.fail(String(error)) },
  );
  try {
    const removed = await reaper.sweep();
    assert.ok(removed >= 5, `removed ${removed}`);
    assert.ok(limits.length >= 3 && limits.every((limit) => limit === 2), `limits ${limits.join(',')}`);
    assert.deepEqual(await remaining(endpoint_id), [ids[5]!]);
  } finally {
    reaper.stop();
  }
});
