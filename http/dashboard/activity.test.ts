import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyAccount, step, type AccountState, type Event, type Transaction } from '../../engine/account.ts';
import { pendingTransaction } from '../../test/support/transactions.ts';
import { createActivity } from './activity.ts';

const at = '2030-01-01T00:00:00.000Z';
const stamp = { at, cause: 'bank_callback' as const, request_id: null };

function created(n: number): { event: Event; transaction: Transaction } {
  const transaction = pendingTransaction({
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    user_id: 'u',
    amount: BigInt(n),
    created_at: at,
  });
  return { event: { type: 'transaction_created', transaction }, transaction };
}

/** Creates and settles transaction `n` through `record`, the way two commits would report them. */
function createAndSettle(activity: ReturnType<typeof createActivity>, n: number, state: AccountState): AccountState {
  const made = step(state, created(n).event);
  activity.record([made.change]);
  const settled = step(made.state, {
    type: 'transaction_succeeded',
    transaction_id: made.change.transaction.id,
    ...stamp,
  });
  activity.record([settled.change]);
  return settled.state;
}

test('keeps the last finished transactions, newest first, and no more than recent_max', () => {
  const activity = createActivity({ recent_max: 3, window_s: 60 });
  let state = emptyAccount('u');
  for (let n = 1; n <= 5; n += 1) state = createAndSettle(activity, n, state);
  assert.deepEqual(
    activity.recent().map((t) => [t.amount, t.status]),
    [
      ['5', 'succeeded'],
      ['4', 'succeeded'],
      ['3', 'succeeded'],
    ],
  );
});

test('throughput counts the last window_s seconds only', () => {
  let now = 1_000_000_000;
  const activity = createActivity({ recent_max: 10, window_s: 10, now_ms: () => now });
  let state = emptyAccount('u');
  for (let n = 1; n <= 4; n += 1) state = createAndSettle(activity, n, state);
  assert.deepEqual(activity.throughput(), { window_s: 10, created_per_s: 0.4, finished_per_s: 0.4 });
  now += 5_000;
  createAndSettle(activity, 5, state);
  assert.equal(activity.throughput().created_per_s, 0.5);
  now += 6_000;
  assert.deepEqual(activity.throughput(), { window_s: 10, created_per_s: 0.1, finished_per_s: 0.1 });
  now += 60_000;
  assert.deepEqual(activity.throughput(), { window_s: 10, created_per_s: 0, finished_per_s: 0 });
});
