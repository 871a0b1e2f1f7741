import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRandom, createScenarios, MAGIC_AMOUNTS, type Direction } from './scenarios.ts';

const delays = { delay_ms_min: 2000, delay_ms_max: 10_000 };

function draws(seed: string, count: number) {
  const scenarios = createScenarios({ seed, ...delays });
  return Array.from({ length: count }, (_, i) =>
    scenarios.admit({ amount: BigInt(1000 + i), direction: i % 2 ? 'debit' : 'credit' }, 1),
  );
}

test('the same seed draws the same sequence; another seed another one', () => {
  assert.deepEqual(draws('run-42', 500), draws('run-42', 500));
  assert.notDeepEqual(draws('run-42', 500), draws('run-43', 500));
});

test('an empty seed is replaced by a random one that replays the run', () => {
  const scenarios = createScenarios({ seed: '', ...delays });
  assert.match(scenarios.seed, /^[0-9a-f]{32}$/);
  assert.notEqual(createScenarios({ seed: '', ...delays }).seed, scenarios.seed);
  const replay = createScenarios({ seed: scenarios.seed, ...delays });
  const request = { amount: 1234n, direction: 'credit' as const };
  assert.deepEqual(replay.admit(request, 1), scenarios.admit(request, 1));
});

test('the PRNG stays within [0, 1) and spreads evenly', () => {
  const random = createRandom('spread');
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const value = random();
    assert.ok(value >= 0 && value < 1);
    buckets[Math.floor(value * 10)]!++;
  }
  for (const count of buckets) assert.ok(Math.abs(count - 10_000) < 500, `bucket ${count}`);
});

test('drawn scenarios follow the configured rates and delays', () => {
  const sample = draws('rates', 20_000);
  const share = (answer: string) => sample.filter((admission) => admission.answer === answer).length / sample.length;
  const settlements = sample.flatMap((admission) => (admission.answer === 'accepted' ? [admission.settlement] : []));
  const succeeded = settlements.filter((settlement) => settlement.outcome.status === 'succeeded');
  assert.ok(Math.abs(share('unavailable') - 0.02) < 0.005);
  assert.ok(Math.abs(share('no_answer') - 0.01) < 0.004);
  assert.ok(Math.abs(share('invalid') - 0.005) < 0.003);
  assert.ok(Math.abs(succeeded.length / settlements.length - 0.9) < 0.01);
  for (const settlement of settlements) {
    assert.ok(settlement.delay_ms >= 2000 && settlement.delay_ms <= 10_000);
    assert.ok([0, 1, 3].includes(settlement.callbacks));
  }
});

test('insufficient funds is drawn for debits only', () => {
  const rates = { success: 0, insufficient_funds: 1, timeout: 0, unavailable: 0, invalid: 0 };
  const scenarios = createScenarios({ seed: 'funds', rates, ...delays });
  const failureCode = (direction: Direction) => {
    const admission = scenarios.admit({ amount: 1000n, direction }, 1);
    const outcome = admission.answer === 'accepted' ? admission.settlement.outcome : undefined;
    return outcome?.status === 'failed' ? outcome.failure_code : outcome?.status;
  };
  assert.equal(failureCode('debit'), 'insufficient_funds');
  assert.equal(failureCode('credit'), 'declined');
});

test('every magic amount forces its scenario on the first and later attempts', () => {
  // Rates that would never produce any of them, so only the magic can.
  const scenarios = createScenarios({
    seed: 'magic',
    rates: { success: 0, timeout: 0, unavailable: 0, invalid: 0, insufficient_funds: 0, duplicate_callback: 0 },
    ...delays,
  });
  const expected: Record<string, [string, string, string | undefined, number]> = {
    success: ['accepted', 'accepted', 'succeeded', 1],
    declined: ['accepted', 'accepted', 'declined', 1],
    insufficient_funds: ['accepted', 'accepted', 'insufficient_funds', 1],
    invalid_request: ['invalid', 'invalid', undefined, 0],
    unavailable: ['unavailable', 'unavailable', undefined, 0],
    unavailable_once: ['unavailable', 'accepted', 'succeeded', 1],
    timeout_before_apply: ['no_answer', 'accepted', 'succeeded', 1],
    timeout_after_apply: ['accepted_without_answer', 'accepted', 'succeeded', 1],
    duplicate_callback: ['accepted', 'accepted', 'succeeded', 3],
    no_callback: ['accepted', 'accepted', 'succeeded', 0],
  };
  assert.deepEqual(MAGIC_AMOUNTS.map((magic) => magic.scenario).sort(), Object.keys(expected).sort());
  for (const magic of MAGIC_AMOUNTS) {
    const [first, later, result, callbacks] = expected[magic.scenario]!;
    const request = { amount: magic.amount, direction: magic.direction ?? 'debit' };
    const admissions = [scenarios.admit(request, 1), scenarios.admit(request, 2), scenarios.admit(request, 7)];
    assert.deepEqual(
      admissions.map((admission) => admission.answer),
      [first, later, later],
      magic.scenario,
    );
    for (const admission of admissions) {
      assert.equal(admission.scenario, magic.scenario);
      if (admission.answer !== 'accepted' && admission.answer !== 'accepted_without_answer') continue;
      const { outcome } = admission.settlement;
      assert.equal(outcome.status === 'failed' ? outcome.failure_code : outcome.status, result, magic.scenario);
      assert.equal(admission.settlement.callbacks, callbacks, magic.scenario);
    }
  }
});

test('a magic amount limited to debits is drawn like any amount on a credit', () => {
  const scenarios = createScenarios({ seed: 'credit', rates: { success: 1 }, ...delays });
  const admission = scenarios.admit({ amount: 402_02n, direction: 'credit' }, 1);
  assert.equal(admission.scenario, 'drawn');
});

test('impossible rates and delays are programmer errors', () => {
  assert.throws(() => createScenarios({ seed: 'x', rates: { success: 1.5 }, ...delays }), RangeError);
  assert.throws(() => createScenarios({ seed: 'x', rates: { success: Number.NaN }, ...delays }), RangeError);
  assert.throws(() => createScenarios({ seed: 'x', rates: { timeout: 0.6, unavailable: 0.6 }, ...delays }), RangeError);
  assert.throws(
    () => createScenarios({ seed: 'x', rates: { duplicate_callback: 0.6, lost_callback: 0.6 }, ...delays }),
    RangeError,
  );
  assert.throws(() => createScenarios({ seed: 'x', delay_ms_min: 10, delay_ms_max: 5 }), RangeError);
  assert.throws(() => createScenarios({ seed: 'x', delay_ms_min: -1, delay_ms_max: 5 }), RangeError);
});
