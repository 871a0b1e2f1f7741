import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestBank } from './support/bank.ts';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { freePort, kill9, spawnGateway } from './support/process.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { elapse, eventually, scaled } from './support/time.ts';

async function deposit(request: ReturnType<typeof client>, key: string, amount: number): Promise<string> {
  const answer = await request('POST', '/api/v1/deposits', {
    key,
    body: { amount, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return (answer.json as { id: string }).id;
}

test('the bank down for a while: the breaker opens, nothing fails because of it, all complete after', async () => {
  const bankPort = await freePort();
  const gateway = await startTestGateway({
    BANK_URL: `http://127.0.0.1:${bankPort}`,
    // The bank is down as refused connections, which fail at once; the timeout only has to let the
    // bank, once up, answer on a loaded machine without tripping the breaker again.
    BANK_TIMEOUT_MS: String(scaled(1000)),
    BANK_BACKOFF_BASE_MS: '20',
    BANK_BACKOFF_MAX_MS: '100',
    BANK_BREAKER_RESET_MS: '200',
    BANK_ATTEMPTS_MAX: '50',
    BANK_CALLBACK_DEADLINE_MS: '500',
  });
  const request = client(gateway.url);
  let bank: Awaited<ReturnType<typeof startTestBank>> | undefined;
  try {
    const user = await createUser(request);
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => deposit(request, user.api_key, 100 + i)));
    await eventually(() => (gateway.bank.state() === 'open' ? true : undefined));
    // The outage lasting a while is the behaviour under test: retries meanwhile must fail nothing.
    await elapse(500);
    const whileDown = await gateway.sql`SELECT status FROM transactions WHERE id IN ${gateway.sql(ids)}`;
    assert.ok(whileDown.every((row) => row.status === 'pending'));

    bank = await startTestBank(bankPort, `${gateway.url}/webhooks/bank-callback`);
    await eventually(async () => {
      const rows = await gateway.sql`SELECT status FROM transactions WHERE id IN ${gateway.sql(ids)}`;
      return rows.every((row) => row.status === 'succeeded') ? true : undefined;
    }, 20_000);
    assert.equal(gateway.bank.state(), 'closed');
    const balance = await request('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
    assert.equal(
      balance.json.balances[0].available,
      ids.reduce((sum, _, i) => sum + 100 + i, 0),
    );
  } finally {
    await gateway.close();
    await bank?.close();
  }
});

test('kill -9 with payments in flight: after a restart every one settles exactly once', async () => {
  const port = await freePort();
  const bankPort = await freePort();
  const bank = await startTestBank(bankPort, `http://127.0.0.1:${port}/webhooks/bank-callback`, {
    BANK_MIN_DELAY_MS: '300',
    BANK_MAX_DELAY_MS: '600',
  });
  const env = {
    PORT: String(port),
    DATABASE_URL: await testDatabaseUrl(),
    REDIS_KEY_PREFIX: testKeyPrefix('kill'),
    BANK_URL: `http://127.0.0.1:${bankPort}`,
    BANK_TIMEOUT_MS: '500',
    BANK_BACKOFF_BASE_MS: '20',
    BANK_CALLBACK_DEADLINE_MS: '1500',
  };
  let gateway = await spawnGateway(env);
  try {
    const request = client(gateway.url);
    const user = await createUser(request, 'Inflight');
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => deposit(request, user.api_key, 1000 + i)));
    await kill9(gateway.child);
    // Down for a while on purpose: the bank's callbacks for the payments in flight find no gateway.
    await elapse(700);
    gateway = await spawnGateway(env);
    const after = client(gateway.url);
    await eventually(async () => {
      const page = await after('GET', `/api/v1/users/${user.id}/transactions?limit=100`, { key: user.api_key });
      return page.status === 200 && page.json.data.every((t: { status: string }) => t.status === 'succeeded')
        ? true
        : undefined;
    }, 30_000);
    const shown = await Promise.all(ids.map((id) => after('GET', `/api/v1/deposits/${id}`, { key: user.api_key })));
    for (const answer of shown) {
      const settled = answer.json.events.filter((e: { type: string }) => e.type === 'transaction_succeeded');
      assert.equal(settled.length, 1);
    }
    const balance = await after('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
    assert.equal(
      balance.json.balances[0].available,
      ids.reduce((sum, _, i) => sum + 1000 + i, 0),
    );
    const reconciliation = await after('GET', '/api/v1/admin/reconciliation', { key: ADMIN_KEY });
    assert.deepEqual(
      reconciliation.json.discrepancies.filter((d: { user_id: string }) => d.user_id === user.id),
      [],
    );
  } finally {
    await kill9(gateway.child);
    await bank.close();
    await dropKeys(env.REDIS_KEY_PREFIX);
  }
});
