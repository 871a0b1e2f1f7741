import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY, client, createUser } from './support/gateway.ts';
import { kill9, spawnGateway } from './support/process.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { eventually } from './support/time.ts';

test('SIGKILL in the middle of a burst of deposits: every 202 survives with its body, nothing else exists', async () => {
  const env = { DATABASE_URL: await testDatabaseUrl(), REDIS_KEY_PREFIX: testKeyPrefix('crash') };
  const first = await spawnGateway(env);
  const before = client(first.url);
  const user = await createUser(before, 'Crash');

  const sent: { key: string; amount: number; status?: number; text?: string }[] = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const attempt: (typeof sent)[number] = { key: crypto.randomUUID(), amount: 1 + sent.length };
      sent.push(attempt);
      try {
        const answer = await before('POST', '/api/v1/deposits', {
          key: user.api_key,
          body: { amount: attempt.amount, currency: 'USD' },
          idempotencyKey: attempt.key,
        });
        attempt.status = answer.status;
        attempt.text = answer.text;
      } catch {
        // The connection died with the process: the outcome is unknown.
      }
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  // Kill once the burst is well under way (bounded: a slow machine answers fewer in a given time).
  await eventually(
    () => (sent.filter((attempt) => attempt.status === 202).length >= 40 ? true : undefined),
    15_000,
  ).catch(() => undefined);
  await kill9(first.child);
  stop = true;
  await Promise.all(workers);

  const answered = sent.filter((attempt) => attempt.status === 202);
  // A loaded machine may answer some with a retryable 503 (busy, deadline, outcome unknown): to the
  // client that is an unknown outcome, as a lost answer is, and it retries with the same key.
  const unknown = sent.filter((attempt) => attempt.status === undefined || attempt.status === 503);
  assert.ok(answered.length > 20, `only ${answered.length} deposits were answered before the kill`);
  const others = sent.filter((attempt) => ![undefined, 202, 503].includes(attempt.status));
  assert.deepEqual(
    others.map((attempt) => [attempt.status, attempt.text]),
    [],
  );

  const second = await spawnGateway(env);
  try {
    const after = client(second.url);
    for (const attempt of answered) {
      const id = (JSON.parse(attempt.text!) as { id: string }).id;
      const shown = await after('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
      assert.equal(shown.status, 200);
      assert.equal(shown.json.amount, attempt.amount);
      const replay = await after('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount: attempt.amount, currency: 'USD' },
        idempotencyKey: attempt.key,
      });
      assert.equal(replay.status, 202);
      assert.equal(replay.text, attempt.text);
    }
    // Each request whose answer was lost (or a 503) either committed (and replays) or never happened (and runs now).
    for (const attempt of unknown) {
      const retry = await after('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount: attempt.amount, currency: 'USD' },
        idempotencyKey: attempt.key,
      });
      assert.equal(retry.status, 202);
    }
    const count = await countTransactions(after, user.api_key);
    assert.equal(count, sent.length, 'exactly one transaction per idempotency key');
    const reconciliation = await after('GET', '/api/v1/admin/reconciliation', { key: ADMIN_KEY });
    assert.equal(reconciliation.status, 200);
    assert.deepEqual(
      reconciliation.json.discrepancies.filter((d: { user_id: string }) => d.user_id === user.id),
      [],
    );
  } finally {
    await kill9(second.child);
    await dropKeys(env.REDIS_KEY_PREFIX);
  }
});

async function countTransactions(request: ReturnType<typeof client>, key: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const page: { json: { data: unknown[]; next_cursor: string | null } } = await request(
      'GET',
      `/api/v1/deposits?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
      { key },
    );
    count += page.json.data.length;
    cursor = page.json.next_cursor;
  } while (cursor);
  return count;
}
