import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../logger.ts';
import { createDeadLetterStore } from '../persistence/dead-letters.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { testDatabaseUrl } from '../test/support/database.ts';
import { captureLines } from '../test/support/log-capture.ts';
import { pendingTransaction } from '../test/support/transactions.ts';
import { emptyAccount, openTransactions } from './account.ts';
import type { ActorReply, ActorRequest } from './account-actor.ts';
import type { BankClient } from './bank-client.ts';
import { createPayments, fullJitterDelayMs, type PaymentsOptions } from './payments.ts';

let sql: Sql;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'payments-test' });
});
after(() => sql.end());

/** A bank that accepts every transfer and never calls back (the workers then wait for the deadline). */
const acceptingBank = {
  submit: () => Promise.resolve({ kind: 'accepted', bank_reference: 'ref' }),
  status: () => Promise.resolve({ kind: 'found', status: 'processing', bank_reference: 'ref' }),
} as unknown as BankClient;

function payments(
  ask: (user_id: string, request: ActorRequest) => Promise<ActorReply>,
  overrides: Partial<PaymentsOptions> = {},
) {
  return createPayments({
    bank: acceptingBank,
    accounts: { ask },
    deadLetters: createDeadLetterStore(sql),
    attempts_max: 3,
    backoff_base_ms: 10,
    backoff_max_ms: 100,
    callback_deadline_ms: 60_000,
    polls_max: 1,
    breaker_wait_ms: 100,
    log: createLogger('silent'),
    ...overrides,
  });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('payment workers: a bounded number in flight', () => {
  test('past workers_max a transaction gets no worker; the sweep hands it to one once there is room', async () => {
    const log = captureLines();
    const [t1, t2, t3] = [pendingTransaction(), pendingTransaction(), pendingTransaction()];
    // The actor takes every command (here only `start_processing`, once the bank accepted).
    const taken: ActorReply = { kind: 'done', outcome: { kind: 'accepted', transaction: t1 } };
    const workers = payments(() => Promise.resolve(taken), {
      workers_max: 2,
      log: createLogger('warn', log.stream),
    });
    const state = emptyAccount(t1.user_id);
    workers.onCommitted(
      state,
      [t1, t2, t3].map((t) => ({ event: { type: 'transaction_created', transaction: t }, transaction: t })),
    );
    assert.deepEqual([workers.has(t1.id), workers.has(t2.id), workers.has(t3.id)], [true, true, false]);
    assert.equal(workers.inFlight().length, 2);
    assert.equal(log.lines().filter((line) => line.msg?.toString().startsWith('payment workers full')).length, 1);

    // t1 settles: its worker ends, and the sweep's next pass (onRecovered of t3's account) drives t3.
    const at = new Date().toISOString();
    const succeeded = { ...t1, status: 'succeeded' as const, updated_at: at, completed_at: at };
    workers.onCommitted(state, [
      {
        event: { type: 'transaction_succeeded', transaction_id: t1.id, at, cause: 'bank_callback', request_id: null },
        transaction: succeeded,
      },
    ]);
    await until(() => !workers.has(t1.id), "t1's worker ended");
    workers.onRecovered({ ...emptyAccount(t3.user_id), open: openTransactions([t3]) });
    await until(() => workers.has(t3.id), 't3 has a worker');
    assert.equal(workers.inFlight().length, 2);
    workers.stop();
  });
});

describe('payment workers: telling a refusing actor again', () => {
  test('the waits between tries are fully jittered (random 0: no wait), and the tries bounded', async () => {
    let asks = 0;
    const workers = payments(
      () => {
        asks += 1;
        return Promise.resolve({ kind: 'refused', reason: 'busy' });
      },
      { random: () => 0 },
    );
    const t = pendingTransaction();
    const started = performance.now();
    workers.start(t);
    await until(() => !workers.has(t.id), 'the worker gave up');
    // Without jitter the 30 tries would wait 100 ms, 200 ms, … up to 5 s each: minutes, not this.
    assert.ok(performance.now() - started < 2000);
    assert.equal(asks, 30);
    workers.stop();
  });

  test('fullJitterDelayMs: uniform below the capped exponential', () => {
    assert.equal(
      fullJitterDelayMs(() => 0, 1, 100, 5000),
      0,
    );
    assert.equal(
      fullJitterDelayMs(() => 0.5, 1, 100, 5000),
      50,
    );
    assert.equal(
      fullJitterDelayMs(() => 0.5, 3, 100, 5000),
      200,
    );
    assert.equal(
      fullJitterDelayMs(() => 0.999, 30, 100, 5000),
      4995,
    );
  });
});
