import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createLogger } from '../logger.ts';
import { eventually, scaled } from '../test/support/time.ts';
import { createBank, type Bank } from './bank.ts';
import { startBankServer, type BankServer } from './bank-server.ts';
import { createScenarios } from './scenarios.ts';

const log = createLogger('silent');
let bank: Bank;
let server: BankServer;

before(async () => {
  const scenarios = createScenarios({
    seed: 'bank-server-test',
    rates: { success: 1, timeout: 0, unavailable: 0, invalid: 0 },
    delay_ms_min: 1,
    delay_ms_max: 3,
  });
  bank = createBank({ scenarios, callbacks: { deliver: () => undefined }, log });
  server = await startBankServer({ port: 0, host: '127.0.0.1', bank, log, hold_ms: 5_000 });
});

after(async () => {
  await server.close();
  bank.stop();
});

function body(overrides: Record<string, unknown> = {}) {
  return {
    reference: randomUUID(),
    direction: 'credit',
    amount: 1500,
    currency: 'USD',
    account: 'acc-42',
    ...overrides,
  };
}

async function post(payload: unknown, signal?: AbortSignal) {
  const response = await fetch(`${server.url}/bank/v1/transfers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof payload === 'string' ? payload : JSON.stringify(payload),
    signal,
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

async function get(path: string) {
  const response = await fetch(`${server.url}${path}`);
  return { status: response.status, json: await response.json() };
}

test('a transfer is accepted with 202 and its status can be looked up', async () => {
  const transfer = body();
  const accepted = await post(transfer);
  assert.equal(accepted.status, 202);
  assert.match(accepted.json.bank_reference, /^bnk_/);
  assert.equal(accepted.json.status, 'processing');
  const again = await post(transfer);
  assert.equal(again.status, 202);
  assert.equal(again.json.bank_reference, accepted.json.bank_reference);
  const looked = await get(`/bank/v1/transfers/${transfer.reference}`);
  assert.equal(looked.status, 200);
  assert.equal(looked.json.reference, transfer.reference);
  assert.equal(looked.json.bank_reference, accepted.json.bank_reference);
  assert.ok(['processing', 'succeeded'].includes(looked.json.status));
});

test('an unknown reference is 404', async () => {
  const missing = await get(`/bank/v1/transfers/${randomUUID()}`);
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error, 'not_found');
});

test('a malformed or invalid body is 400 and names the fields', async () => {
  for (const [payload, field] of [
    [body({ reference: 'not-a-uuid' }), 'reference'],
    [body({ direction: 'sideways' }), 'direction'],
    [body({ amount: 0 }), 'amount'],
    [body({ amount: 12.5 }), 'amount'],
    [body({ amount: 1e12 + 1 }), 'amount'],
    [body({ amount: '1500' }), 'amount'],
    [body({ currency: 'usd' }), 'currency'],
    [body({ account: '' }), 'account'],
  ] as const) {
    const answer = await post(payload);
    assert.equal(answer.status, 400, field);
    assert.equal(answer.json.error, 'validation_error');
    assert.ok(
      answer.json.details.some((detail: { field: string }) => detail.field === field),
      field,
    );
  }
  const malformed = await post('{"reference":');
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.error, 'malformed_json');
});

test('the largest amount is accepted', async () => {
  assert.equal((await post(body({ amount: 1e12 }))).status, 202);
});

test('a reference reused with other details is 422', async () => {
  const transfer = body();
  await post(transfer);
  const reused = await post({ ...transfer, amount: 1501 });
  assert.equal(reused.status, 422);
  assert.equal(reused.json.error, 'reference_reused');
});

test('the magic amounts for refusals answer 400 and 503', async () => {
  const invalid = await post(body({ amount: 400_00 }));
  assert.equal(invalid.status, 400);
  assert.equal(invalid.json.error, 'invalid_request');
  const unavailable = await post(body({ amount: 503_03 }));
  assert.equal(unavailable.status, 503);
  assert.equal(unavailable.json.error, 'bank_unavailable');
  assert.equal(unavailable.headers.get('retry-after'), '1');
});

test('408.08 holds the request past the client timeout, yet the retry finds the transfer', async () => {
  const transfer = body({ amount: 408_08 });
  await assert.rejects(post(transfer, AbortSignal.timeout(100)), { name: 'TimeoutError' });
  const looked = await get(`/bank/v1/transfers/${transfer.reference}`);
  assert.equal(looked.status, 200);
  const retried = await post(transfer);
  assert.equal(retried.status, 202);
  assert.equal(retried.json.bank_reference, looked.json.bank_reference);
});

test('health answers ok', async () => {
  assert.deepEqual(await get('/health'), { status: 200, json: { status: 'ok' } });
});

test('closing releases the requests it holds', async () => {
  const scenarios = createScenarios({ seed: 'hold', delay_ms_min: 1, delay_ms_max: 1 });
  const ownBank = createBank({ scenarios, callbacks: { deliver: () => undefined }, log });
  const own = await startBankServer({ port: 0, host: '127.0.0.1', bank: ownBank, log, hold_ms: 60_000 });
  const held = fetch(`${own.url}/bank/v1/transfers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body({ amount: 408_01 })),
  });
  // Closed once the server holds the request (closing before it arrives would test nothing).
  await eventually(() => (own.held() === 1 ? true : undefined));
  const started = Date.now();
  await own.close();
  ownBank.stop();
  assert.equal((await held).status, 504);
  assert.ok(Date.now() - started < scaled(1000));
});
