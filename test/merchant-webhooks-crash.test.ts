import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabaseUrl } from './support/database.ts';
import { client, createUser, OBEDIENT_BANK } from './support/gateway.ts';
import { kill9, spawnGateway } from './support/process.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { eventually, scaled } from './support/time.ts';
import { startReceiver } from './support/webhook-receiver.ts';

test('SIGKILL while the receiver holds a delivery open: a new process delivers every event, same ids, none invented', async () => {
  const env = {
    DATABASE_URL: await testDatabaseUrl(),
    REDIS_KEY_PREFIX: testKeyPrefix('hooks-crash'),
    ...OBEDIENT_BANK,
    // The bank accepts (processing) and never calls back during the test.
    BANK_MIN_DELAY_MS: '600000',
    BANK_MAX_DELAY_MS: '600000',
    MERCHANT_WEBHOOKS_ALLOW_PRIVATE: 'true',
    MERCHANT_WEBHOOKS_POLL_MS: '50',
    MERCHANT_WEBHOOKS_RETRY_BASE_MS: '50',
    MERCHANT_WEBHOOKS_RETRY_MAX_MS: '200',
    // An attempt's claim lasts its timeout plus a margin: the killed process's claims come back after it.
    MERCHANT_WEBHOOKS_TIMEOUT_MS: String(scaled(2000)),
  };
  // Held open until the process that sent it is dead; answered from then on.
  const receiver = await startReceiver(() => 'hold');
  const first = await spawnGateway(env);
  let second: Awaited<ReturnType<typeof spawnGateway>> | undefined;
  try {
    const before = client(first.url);
    const user = await createUser(before, 'Hooks Crash');
    const registered = await before('POST', '/api/v1/webhook-endpoints', {
      key: user.api_key,
      body: { url: receiver.url, event_types: ['*'] },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(registered.status, 201, registered.text);
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const answer = await before('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount: 100 + i, currency: 'USD' },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(answer.status, 202, answer.text);
      ids.push(answer.json.id as string);
    }
    await eventually(() => (receiver.received.length > 0 ? true : undefined), 15_000);
    const held = receiver.received[0]!;
    await kill9(first.child);
    receiver.answerWith(() => 200);
    receiver.release();

    second = await spawnGateway(env);
    const after = client(second.url);
    // Every status change in the deposits' audit trails (the bank takes each one to processing).
    const expected = await eventually(async () => {
      const changes: string[] = [];
      for (const id of ids) {
        const shown = await after('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
        if (shown.json.status !== 'processing') return undefined;
        for (const event of shown.json.events as { status: string | null }[]) {
          if (event.status) changes.push(`${id} deposit.${event.status}`);
        }
      }
      return changes.sort();
    }, 30_000);
    const seen = () => [...new Set(receiver.received.map((r) => `${r.json.data.id as string} ${r.json.type}`))].sort();
    await eventually(() => (seen().length === expected.length ? true : undefined), 30_000);
    assert.deepEqual(seen(), expected);
    // One webhook-id per event, whichever process sent it and however often.
    const idsByEvent = new Map<string, Set<string>>();
    for (const r of receiver.received) {
      const event = `${r.json.data.id as string} ${r.json.type}`;
      idsByEvent.set(event, (idsByEvent.get(event) ?? new Set()).add(String(r.headers['webhook-id'])));
    }
    assert.ok([...idsByEvent.values()].every((webhookIds) => webhookIds.size === 1));
    const resent = receiver.received.filter((r) => r.headers['webhook-id'] === held.headers['webhook-id']);
    assert.ok(resent.length >= 2, 'the delivery held open when the process died is sent again');
    const log = await eventually(async () => {
      const answer = await after('GET', '/api/v1/webhook-deliveries?limit=100', { key: user.api_key });
      const data = answer.json.data as { status: string }[];
      return data.every((d) => d.status === 'succeeded') ? data : undefined;
    }, 15_000);
    assert.equal(log.length, expected.length);
  } finally {
    await kill9(first.child);
    if (second) await kill9(second.child);
    await receiver.close();
    await dropKeys(env.REDIS_KEY_PREFIX);
  }
});
