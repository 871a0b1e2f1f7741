import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyAccount, step } from '../../engine/account.ts';
import type { BreakerState } from '../../engine/bank-client.ts';
import { createMetrics } from '../../metrics.ts';
import { pendingTransaction } from '../../test/support/transactions.ts';
import { createSeries, intervalQuantile } from './series.ts';

/** A ring over a real metrics registry, with the breaker and the payments in flight set by the test. */
function setUp(window_s: number) {
  const metrics = createMetrics();
  const sources = { breaker: 'closed' as BreakerState, in_flight: 0 };
  const series = createSeries(
    {
      metrics: metrics.registry,
      payments: { inFlightCount: () => sources.in_flight },
      bank: { state: () => sources.breaker },
    },
    { interval_s: 1, window_s },
  );
  return { metrics, sources, series };
}

/** Commits the creation of a deposit and its result, as the accounts report them to the metrics. */
function depositAndSettle(metrics: ReturnType<typeof createMetrics>, outcome: 'succeeded' | 'failed'): void {
  const transaction = pendingTransaction({ user_id: 'u' });
  const made = step(emptyAccount('u'), { type: 'transaction_created', transaction });
  const stamp = { at: new Date().toISOString(), cause: 'bank_callback' as const, request_id: null };
  const settled = step(
    made.state,
    outcome === 'succeeded'
      ? { type: 'transaction_succeeded', transaction_id: transaction.id, ...stamp }
      : {
          type: 'transaction_failed',
          transaction_id: transaction.id,
          failure: { code: 'bank_declined', message: 'declined' },
          ...stamp,
        },
  );
  metrics.committed([made.change, settled.change]);
}

test('a sample is the difference between two readings of the counters, per second', async () => {
  const { metrics, sources, series } = setUp(600);
  await series.sample(1_000_000);
  assert.equal(series.read().t.length, 0, 'the first reading is only the baseline');

  depositAndSettle(metrics, 'succeeded');
  depositAndSettle(metrics, 'failed');
  metrics.bankCall('submit', 'accepted', 20);
  metrics.bankCall('submit', 'accepted', 20);
  metrics.bankCall('status', 'transient', 4000);
  metrics.bankCall('submit', 'rejected', 20);
  metrics.bankCall('submit', 'breaker_open', 0);
  sources.breaker = 'half_open';
  sources.in_flight = 7;
  await series.sample(1_002_000);

  assert.deepEqual(series.read(), {
    interval_s: 1,
    window_s: 600,
    t: [1002],
    created_per_s: [1],
    settled_per_s: [1],
    failed_per_s: [0.5],
    // Four calls reached the bank in two seconds; the breaker's refusal is not one.
    bank_calls_per_s: [2],
    // Three of four in the 10–25 ms bucket: the median two thirds into it.
    bank_p50_ms: [20],
    // The 99th percentile is in the 2.5–5 s bucket, which holds one call: 96 % of the way into it.
    bank_p99_ms: [4900],
    bank_error_rate: [0.25],
    breaker: ['half_open'],
    payments_in_flight: [7],
  });

  await series.sample(1_003_000);
  const quiet = series.read();
  assert.deepEqual(
    [quiet.created_per_s[1], quiet.bank_calls_per_s[1], quiet.bank_p50_ms[1], quiet.bank_error_rate[1]],
    [0, 0, null, null],
    'an interval without bank calls has no latency and no error rate, not zeros',
  );
});

test('keeps window_s / interval_s samples, oldest first, and drops the oldest beyond', async () => {
  const { metrics, series } = setUp(5);
  for (let second = 0; second <= 8; second += 1) {
    if (second === 8) depositAndSettle(metrics, 'succeeded');
    await series.sample(second * 1000);
  }
  const { t, created_per_s, breaker } = series.read();
  assert.deepEqual(t, [4, 5, 6, 7, 8]);
  assert.deepEqual(created_per_s, [0, 0, 0, 0, 1]);
  assert.deepEqual(breaker, ['closed', 'closed', 'closed', 'closed', 'closed']);
});

test('intervalQuantile interpolates within the bucket and stops at the highest finite bound', () => {
  const before = new Map([
    [0.1, 10],
    [1, 10],
    [Infinity, 10],
  ]);
  const after = new Map([
    [0.1, 14],
    [1, 18],
    [Infinity, 20],
  ]);
  // 4 under 100 ms, 4 between 100 ms and 1 s, 2 above 1 s.
  assert.equal(intervalQuantile(before, after, 0.2), 50);
  assert.equal(intervalQuantile(before, after, 0.6), 550);
  assert.equal(intervalQuantile(before, after, 0.99), 1000);
  assert.equal(intervalQuantile(after, after, 0.5), null);
});
