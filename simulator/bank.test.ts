import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '../logger.ts';
import { createBank, type BankCallback, type TransferRequest } from './bank.ts';
import { elapse, eventually, scaled } from '../test/support/time.ts';
import { createScenarios, type Rates } from './scenarios.ts';

const NEVER: Partial<Rates> = { timeout: 0, unavailable: 0, invalid: 0, duplicate_callback: 0, lost_callback: 0 };

/** A bank whose callbacks land in an array; every drawn transfer succeeds unless the rates say otherwise. */
function testBank(options: { delay_ms?: number; transfers_max?: number; retention_ms?: number } = {}) {
  const delivered: { callback: BankCallback; copies: number }[] = [];
  const delay_ms = options.delay_ms ?? 2;
  const scenarios = createScenarios({
    seed: 'bank-test',
    rates: { ...NEVER, success: 1 },
    delay_ms_min: delay_ms,
    delay_ms_max: delay_ms,
  });
  const bank = createBank({
    scenarios,
    callbacks: { deliver: (callback, copies) => delivered.push({ callback, copies }) },
    log: createLogger('silent'),
    transfers_max: options.transfers_max,
    retention_ms: options.retention_ms,
  });
  return { bank, delivered };
}

function transfer(amount: bigint, overrides: Partial<TransferRequest> = {}): TransferRequest {
  return { reference: randomUUID(), direction: 'debit', amount, currency: 'USD', account: 'acc-1', ...overrides };
}

async function settled(bank: ReturnType<typeof testBank>['bank'], reference: string) {
  return eventually(async () => {
    const view = await bank.status(reference);
    return view && view.status !== 'processing' ? view : undefined;
  }, 2000);
}

test('a transfer is accepted, settles after its delay and is called back once', async () => {
  const { bank, delivered } = testBank({ delay_ms: 20 });
  const request = transfer(1234n);
  const accepted = await bank.submit(request);
  assert.equal(accepted.kind, 'accepted');
  assert.ok(accepted.kind === 'accepted' && accepted.status === 'processing');
  assert.deepEqual(await bank.status(request.reference), {
    reference: request.reference,
    bank_reference: accepted.bank_reference,
    status: 'processing',
  });
  const view = await settled(bank, request.reference);
  assert.deepEqual(view, {
    reference: request.reference,
    bank_reference: accepted.bank_reference,
    status: 'succeeded',
  });
  assert.equal(delivered.length, 1);
  assert.deepEqual(delivered[0]?.callback.data, view);
  assert.equal(delivered[0]?.callback.type, 'transfer.succeeded');
  assert.equal(delivered[0]?.copies, 1);
  bank.stop();
});

test('the same reference, even submitted concurrently, makes one transfer and one callback', async () => {
  const { bank, delivered } = testBank();
  const request = transfer(1234n);
  const results = await Promise.all(Array.from({ length: 20 }, () => bank.submit({ ...request })));
  const references = new Set(results.map((result) => result.kind === 'accepted' && result.bank_reference));
  assert.equal(references.size, 1);
  await settled(bank, request.reference);
  const again = await bank.submit(request);
  assert.ok(again.kind === 'accepted' && references.has(again.bank_reference) && again.status === 'succeeded');
  // A second callback would come after the first; nothing signals that none will, so give it a while.
  await elapse(scaled(10));
  assert.equal(delivered.length, 1);
  bank.stop();
});

test('a known reference with other details is refused, and the transfer keeps its own', async () => {
  const { bank } = testBank();
  const request = transfer(1234n);
  await bank.submit(request);
  for (const change of [{ amount: 1235n }, { direction: 'credit' as const }, { currency: 'EUR' }, { account: 'x' }]) {
    assert.deepEqual(await bank.submit({ ...request, ...change }), { kind: 'reference_reused' });
  }
  assert.equal((await bank.submit(request)).kind, 'accepted');
  bank.stop();
});

test('an unknown reference has no status', async () => {
  const { bank } = testBank();
  assert.equal(await bank.status(randomUUID()), undefined);
  bank.stop();
});

test('amounts and references outside the bounds are invalid', async () => {
  const { bank } = testBank();
  for (const request of [transfer(0n), transfer(-5n), transfer(10n ** 12n + 1n), transfer(5n, { reference: '' })]) {
    assert.equal((await bank.submit(request)).kind, 'invalid');
  }
  assert.equal((await bank.submit(transfer(10n ** 12n))).kind, 'accepted');
  bank.stop();
});

test('666.66 is accepted and then declined', async () => {
  const { bank, delivered } = testBank();
  const request = transfer(666_66n);
  assert.equal((await bank.submit(request)).kind, 'accepted');
  const view = await settled(bank, request.reference);
  assert.equal(view.status, 'failed');
  assert.equal(view.failure_code, 'declined');
  assert.equal(delivered[0]?.callback.type, 'transfer.failed');
  bank.stop();
});

test('402.02 on a debit fails for insufficient funds', async () => {
  const { bank } = testBank();
  const request = transfer(402_02n, { direction: 'debit' });
  await bank.submit(request);
  assert.equal((await settled(bank, request.reference)).failure_code, 'insufficient_funds');
  bank.stop();
});

test('400.00 is refused as invalid on every attempt and nothing is recorded', async () => {
  const { bank } = testBank();
  const request = transfer(400_00n);
  for (let attempt = 0; attempt < 3; attempt++) assert.equal((await bank.submit(request)).kind, 'invalid');
  assert.equal(await bank.status(request.reference), undefined);
  bank.stop();
});

test('503.03 is unavailable on every attempt; 503.01 only on the first', async () => {
  const { bank } = testBank();
  const always = transfer(503_03n);
  for (let attempt = 0; attempt < 3; attempt++) assert.equal((await bank.submit(always)).kind, 'unavailable');
  assert.equal(await bank.status(always.reference), undefined);
  const once = transfer(503_01n);
  assert.equal((await bank.submit(once)).kind, 'unavailable');
  assert.equal(await bank.status(once.reference), undefined);
  assert.equal((await bank.submit(once)).kind, 'accepted');
  assert.equal((await settled(bank, once.reference)).status, 'succeeded');
  bank.stop();
});

test('408.01 goes unanswered and unrecorded; the retry is accepted', async () => {
  const { bank } = testBank();
  const request = transfer(408_01n);
  assert.equal((await bank.submit(request)).kind, 'no_answer');
  assert.equal(await bank.status(request.reference), undefined);
  assert.equal((await bank.submit(request)).kind, 'accepted');
  bank.stop();
});

test('408.08 goes unanswered but is applied; the retry finds the same transfer', async () => {
  const { bank, delivered } = testBank({ delay_ms: 20 });
  const request = transfer(408_08n);
  assert.equal((await bank.submit(request)).kind, 'no_answer');
  const recorded = await bank.status(request.reference);
  assert.equal(recorded?.status, 'processing');
  const retried = await bank.submit(request);
  assert.deepEqual(retried, { kind: 'accepted', bank_reference: recorded.bank_reference, status: 'processing' });
  await settled(bank, request.reference);
  assert.equal(delivered.length, 1);
  bank.stop();
});

test('777.77 hands its callback over for three copies; 999.99 for none', async () => {
  const { bank, delivered } = testBank();
  const duplicated = transfer(777_77n);
  const silent = transfer(999_99n);
  await bank.submit(duplicated);
  await bank.submit(silent);
  assert.equal((await settled(bank, silent.reference)).status, 'succeeded');
  await settled(bank, duplicated.reference);
  assert.deepEqual(
    delivered.map(({ callback, copies }) => [callback.data.reference, copies]),
    [[duplicated.reference, 3]],
  );
  bank.stop();
});

test('when full of transfers still processing, a new reference is refused as unavailable', async () => {
  const { bank } = testBank({ delay_ms: 60_000, transfers_max: 2 });
  assert.equal((await bank.submit(transfer(1n))).kind, 'accepted');
  const second = transfer(2n);
  assert.equal((await bank.submit(second)).kind, 'accepted');
  assert.equal((await bank.submit(transfer(3n))).kind, 'unavailable');
  assert.equal((await bank.submit(second)).kind, 'accepted', 'a known reference is still answered');
  bank.stop();
});

test('when full, the oldest finished transfer is forgotten to make room', async () => {
  const { bank } = testBank({ transfers_max: 2 });
  const [first, second] = [transfer(1n), transfer(2n)];
  await bank.submit(first);
  await settled(bank, first.reference);
  await bank.submit(second);
  await settled(bank, second.reference);
  assert.equal((await bank.submit(transfer(3n))).kind, 'accepted');
  assert.equal(await bank.status(first.reference), undefined);
  assert.equal((await bank.status(second.reference))?.status, 'succeeded');
  bank.stop();
});

test('finished transfers are forgotten after the retention time', async () => {
  const { bank } = testBank({ retention_ms: 0 });
  const first = transfer(1n);
  await bank.submit(first);
  await settled(bank, first.reference);
  await bank.submit(transfer(2n));
  assert.equal(await bank.status(first.reference), undefined);
  bank.stop();
});

test('a stopped bank settles nothing more and answers unavailable', async () => {
  const { bank, delivered } = testBank({ delay_ms: 5 });
  await bank.submit(transfer(1n));
  bank.stop();
  assert.equal((await bank.submit(transfer(2n))).kind, 'unavailable');
  // Past the transfer's delay of 5 ms: a callback would have come by now.
  await elapse(scaled(20));
  assert.equal(delivered.length, 0);
});
