import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { shardOf } from '../engine/shards.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { signedCallback } from './support/bank.ts';
import { testDatabaseUrl } from './support/database.ts';
import { appendWaiting, holdShard } from './support/shard-lock.ts';
import { client, createUser, startTestGateway } from './support/gateway.ts';
import { eventually, scaled } from './support/time.ts';

// The machine is shared: every limit below is a generous multiple of what an idle machine needs.
const ASK_TIMEOUT_MS = scaled(2000);
/** On a quiet machine; `eventually` scales it. */
const WAIT_MS = 10_000;

let gateway: Gateway;
let request: ReturnType<typeof client>;
let sql: Sql;

before(async () => {
  // The ask must time out within the request's deadline (the client gets 503 outcome_unknown).
  gateway = await startTestGateway({
    ACTOR_ASK_TIMEOUT_MS: String(ASK_TIMEOUT_MS),
    REQUEST_DEADLINE_MS: String(2 * ASK_TIMEOUT_MS),
  });
  request = client(gateway.url);
  sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'retry-in-batch-test' });
});
after(async () => {
  await sql.end();
  await gateway.close();
});

test('a retry batched with its original replays its answer; the rest of the batch commits; no 503', async () => {
  const user = await createUser(request, 'Batched Retry');
  const deposit = (amount: number, key: string) =>
    request('POST', '/api/v1/deposits', { key: user.api_key, body: { amount, currency: 'USD' }, idempotencyKey: key });

  // A transaction the bank will settle by callback, once its worker has told the account the bank took it.
  const earlier = await deposit(100, crypto.randomUUID());
  assert.equal(earlier.status, 202);
  await eventually(async () => {
    const shown = await request('GET', `/api/v1/deposits/${earlier.json.id}`, { key: user.api_key });
    return shown.json.status === 'processing' ? true : undefined;
  }, WAIT_MS);

  const release = await holdShard(sql, shardOf(user.id, gateway.shards.shards));
  let released = false;
  try {
    // The actor's current batch waits on the lease; the original request waits behind it and its
    // client gives up (503 outcome_unknown), while the request stays in the actor's mailbox.
    const blocking = deposit(200, crypto.randomUUID());
    await appendWaiting(sql, WAIT_MS);
    const key = `retried-${crypto.randomUUID()}`;
    const original = await deposit(700, key);
    assert.equal(original.status, 503);
    assert.equal(original.json.error, 'outcome_unknown');
    assert.equal(gateway.accounts.mailboxDepth(), 1);

    // The client retries; an unrelated deposit and the bank's callback arrive meanwhile: all four
    // requests wait in the mailbox and are handled as one batch once the lease is free.
    const callback = signedCallback({
      type: 'transfer.succeeded',
      data: { reference: earlier.json.id, bank_reference: 'bank-ref-batched', status: 'succeeded' },
    });
    const answers = Promise.all([
      deposit(700, key),
      deposit(300, crypto.randomUUID()),
      request('POST', '/webhooks/bank-callback', { raw: callback.raw, headers: callback.headers }),
    ]);
    await eventually(() => (gateway.accounts.mailboxDepth() === 4 ? true : undefined), WAIT_MS);
    await release();
    released = true;
    const [retry, unrelated, settled] = await answers;
    assert.equal((await blocking).status, 503, 'the request the lease held timed out, as the original did');

    assert.equal(retry.status, 202, retry.text);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.equal(unrelated.status, 202, unrelated.text);
    assert.equal(settled.status, 200, settled.text);
    assert.equal(settled.json.status, 'applied');

    // The retry's answer is the original's, as every later retry will see it.
    const again = await deposit(700, key);
    assert.equal(again.status, 202);
    assert.equal(again.text, retry.text);
    const list = await request('GET', '/api/v1/deposits?limit=100', { key: user.api_key });
    const byAmount = (amount: number) => list.json.data.filter((t: { amount: number }) => t.amount === amount);
    assert.equal(byAmount(700).length, 1, 'exactly one transaction for the retried key');
    assert.equal(byAmount(700)[0].id, retry.json.id);
    assert.equal(byAmount(300).length, 1);
    assert.equal(byAmount(100)[0].status, 'succeeded');
  } finally {
    if (!released) await release();
  }
});
