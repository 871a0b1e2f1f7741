import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { createDeadLetterStore } from '../persistence/dead-letters.ts';
import { FAST_BANK } from './support/bank.ts';
import { client, createUser, startTestGateway } from './support/gateway.ts';
import { eventually, scaled } from './support/time.ts';

// The machine is shared: every limit below is a generous multiple of what an idle machine needs.
const SWEEP_MS = 500;
// What README promises (two sweep intervals), plus the resumed worker's wait for a callback that
// never comes (FAST_BANK's deadline) before it polls, plus room for a busy machine.
/** On a quiet machine; `eventually` scales it. */
const RESUMED_WITHIN_MS = 2 * SWEEP_MS + Number(FAST_BANK.BANK_CALLBACK_DEADLINE_MS) + 3000;

let gateway: Gateway;
let request: ReturnType<typeof client>;

before(async () => {
  gateway = await startTestGateway({
    ...FAST_BANK,
    // The bank never calls back: only a worker polling it can settle a transaction.
    BANK_LOST_CALLBACK_RATE: '1',
    OPEN_PAYMENT_SWEEP_MS: String(SWEEP_MS),
  });
  request = client(gateway.url);
});
after(() => gateway.close());

/** A deposit whose payment worker has given up at once, as one does when its account keeps refusing it. */
async function abandonedDeposit(name: string): Promise<{ user_id: string; id: string }> {
  const user = await createUser(request, name);
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount: 1234, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202);
  // Ending the worker leaves what giving up leaves: an open transaction, a live actor, no worker.
  gateway.payments.release((user_id) => user_id === user.id);
  assert.equal(gateway.payments.has(answer.json.id), false);
  return { user_id: user.id, id: answer.json.id };
}

/** The transaction's status in the read model, read without touching its account. */
async function statusOf(id: string): Promise<string> {
  const [row] = await gateway.sql<{ status: string }[]>`SELECT status FROM transactions WHERE id = ${id}`;
  return row!.status;
}

test('a payment whose worker gave up is driven to a final state by the sweep, its account untouched', async () => {
  const started = Date.now();
  const { id } = await abandonedDeposit('Abandoned');

  await eventually(async () => ((await statusOf(id)) === 'succeeded' ? true : undefined), RESUMED_WITHIN_MS);
  assert.ok(Date.now() - started <= scaled(RESUMED_WITHIN_MS));
  const [poll] = await gateway.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM journal WHERE transaction_id = ${id} AND payload->>'cause' = 'poll'`;
  assert.equal(poll!.n, 1, 'settled by the resumed worker polling the bank');
});

test('a dead-lettered payment is left to the operator: the sweep does not resume it', async () => {
  const dead = await abandonedDeposit('Dead Lettered');
  await createDeadLetterStore(gateway.sql).add({
    transaction_id: dead.id,
    user_id: dead.user_id,
    reason: 'filed by the test',
    attempts: 0,
    last_error: null,
  });
  // Newer than the dead-lettered one: once a sweep has resumed it, that sweep also saw the other.
  const control = await abandonedDeposit('Control');

  await eventually(async () => ((await statusOf(control.id)) === 'succeeded' ? true : undefined), RESUMED_WITHIN_MS);
  // Still open (its given-up worker may have recorded the bank's acceptance), and nobody drives it.
  assert.match(await statusOf(dead.id), /^(pending|processing)$/);
  assert.equal(gateway.payments.has(dead.id), false);
});
