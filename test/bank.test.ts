import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { eventually, FAST_BANK, signedCallback } from './support/bank.ts';
import { ADMIN_KEY, client, createUser, fund, startTestGateway } from './support/gateway.ts';
import { elapse, scaled } from './support/time.ts';

let gateway: Gateway;
let request: ReturnType<typeof client>;

before(async () => {
  gateway = await startTestGateway(FAST_BANK);
  request = client(gateway.url);
});
after(() => gateway.close());

type User = { id: string; api_key: string };

async function create(user: User, type: 'deposits' | 'withdrawals', amount: number) {
  const answer = await request('POST', `/api/v1/${type}`, {
    key: user.api_key,
    body: { amount, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json as { id: string };
}

async function final(user: User, type: 'deposits' | 'withdrawals', id: string) {
  return eventually(async () => {
    const shown = await request('GET', `/api/v1/${type}/${id}`, { key: user.api_key });
    return ['succeeded', 'failed'].includes(shown.json.status) ? shown.json : undefined;
  });
}

async function balance(user: User) {
  const answer = await request('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
  const { available, held } = answer.json.balances.find((b: { currency: string }) => b.currency === 'USD');
  return { available, held };
}

const types = (events: { type: string }[]) => events.map((event) => event.type);

describe('each bank scenario, end to end', () => {
  test('success: pending → processing → succeeded by callback, and the deposit is credited', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 424_24);
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(shown.status, 'succeeded');
    assert.match(shown.bank_reference, /.+/);
    assert.equal(shown.attempts, 1);
    // On a busy machine the callback can arrive before the submit's answer is journaled: the deposit
    // then goes from pending to succeeded, and the callback's reference is the one it keeps.
    const trail = types(shown.events);
    assert.ok(
      [
        'transaction_created,transaction_processing,transaction_succeeded',
        'transaction_created,transaction_succeeded',
      ].includes(trail.join()),
      trail.join(),
    );
    assert.equal(shown.events.at(-1).cause, 'bank_callback');
    assert.deepEqual(await balance(user), { available: 424_24, held: 0 });
  });

  test('declined: the withdrawal fails with the bank’s code and its hold is released', async () => {
    const user = await createUser(request);
    await fund(gateway, request, user, 100_000);
    const withdrawal = await create(user, 'withdrawals', 666_66);
    const shown = await final(user, 'withdrawals', withdrawal.id);
    assert.equal(shown.status, 'failed');
    assert.equal(shown.failure.code, 'declined');
    assert.deepEqual(await balance(user), { available: 100_000, held: 0 });
  });

  test('insufficient funds at the bank: the withdrawal fails and nothing leaves the account', async () => {
    const user = await createUser(request);
    await fund(gateway, request, user, 100_000);
    const withdrawal = await create(user, 'withdrawals', 402_02);
    const shown = await final(user, 'withdrawals', withdrawal.id);
    assert.equal(shown.failure.code, 'insufficient_funds');
    assert.deepEqual(await balance(user), { available: 100_000, held: 0 });
  });

  test('invalid request (4xx): failed at once, no retry', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 400_00);
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(shown.status, 'failed');
    assert.match(shown.failure.code, /^bank_/);
    assert.equal(shown.attempts, 1, JSON.stringify(shown));
    assert.deepEqual(await balance(user), { available: 0, held: 0 });
  });

  test('unavailable once (5xx): retried with backoff, then succeeds', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 503_01);
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(shown.status, 'succeeded');
    assert.equal(shown.attempts, 2);
    assert.deepEqual(types(shown.events).slice(0, 2), ['transaction_created', 'attempt_failed']);
    assert.match(shown.events[1].error, /503/);
  });

  test('timeout before the bank applied it: the retry is accepted and it succeeds once', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 408_01);
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(shown.status, 'succeeded');
    assert.ok(shown.attempts >= 2);
    assert.deepEqual(await balance(user), { available: 408_01, held: 0 });
  });

  test('the bank’s answer lost after it applied a debit: exactly one debit', async () => {
    const user = await createUser(request);
    await fund(gateway, request, user, 100_000);
    const withdrawal = await create(user, 'withdrawals', 408_08);
    const shown = await final(user, 'withdrawals', withdrawal.id);
    assert.equal(shown.status, 'succeeded');
    assert.equal(types(shown.events).filter((t) => t === 'transaction_succeeded').length, 1);
    assert.deepEqual(await balance(user), { available: 100_000 - 408_08, held: 0 });
    const atBank = await fetch(`${gateway.bankUrl}/bank/v1/transfers/${withdrawal.id}`);
    assert.equal(((await atBank.json()) as { status: string }).status, 'succeeded');
  });

  test('unavailable on every attempt: dead-lettered after the last, not failed; an admin retry runs it again', async () => {
    const user = await createUser(request);
    await fund(gateway, request, user, 100_000);
    const withdrawal = await create(user, 'withdrawals', 503_03);
    const letter = await eventually(async () => {
      const page = await request('GET', '/api/v1/admin/dead-letters?limit=100', { key: ADMIN_KEY });
      return page.json.data.find((d: { transaction_id: string }) => d.transaction_id === withdrawal.id);
    });
    assert.equal(letter.attempts, 3);
    assert.match(letter.last_error, /503/);
    const shown = await request('GET', `/api/v1/withdrawals/${withdrawal.id}`, { key: user.api_key });
    assert.equal(shown.json.status, 'pending');
    assert.deepEqual(await balance(user), { available: 100_000 - 503_03, held: 503_03 });

    const forbidden = await request('GET', '/api/v1/admin/dead-letters', { key: user.api_key });
    assert.equal(forbidden.status, 403);
    const retried = await request('POST', `/api/v1/admin/dead-letters/${letter.id}/retry`, {
      key: ADMIN_KEY,
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(retried.status, 202, retried.text);
    assert.equal(retried.json.status, 'retrying');
    const again = await request('POST', `/api/v1/admin/dead-letters/${letter.id}/retry`, {
      key: ADMIN_KEY,
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(again.status, 409);
    const second = await eventually(async () => {
      const page = await request('GET', '/api/v1/admin/dead-letters?limit=100', { key: ADMIN_KEY });
      return page.json.data.find(
        (d: { transaction_id: string; id: string }) => d.transaction_id === withdrawal.id && d.id !== letter.id,
      );
    });
    assert.equal(second.retried_at, null);
  });

  test('a dead-lettered deposit retried by the admin: the retry is in its audit trail, cause admin', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 503_03);
    const letter = await eventually(async () => {
      const page = await request('GET', '/api/v1/admin/dead-letters?limit=100', { key: ADMIN_KEY });
      return page.json.data.find((d: { transaction_id: string }) => d.transaction_id === deposit.id);
    });
    const idempotencyKey = crypto.randomUUID();
    const retried = await request('POST', `/api/v1/admin/dead-letters/${letter.id}/retry`, {
      key: ADMIN_KEY,
      idempotencyKey,
    });
    assert.equal(retried.status, 202, retried.text);
    const replay = await request('POST', `/api/v1/admin/dead-letters/${letter.id}/retry`, {
      key: ADMIN_KEY,
      idempotencyKey,
    });
    assert.deepEqual([replay.status, replay.text], [202, retried.text]);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    // The retry's event opens a new round of attempts: the worker it started fails them again.
    const shown = await eventually(async () => {
      const answer = await request('GET', `/api/v1/deposits/${deposit.id}`, { key: user.api_key });
      const at = types(answer.json.events).indexOf('retry_requested');
      return at >= 0 && types(answer.json.events).slice(at).includes('attempt_failed') ? answer.json : undefined;
    });
    const admin = shown.events.filter((event: { cause: string }) => event.cause === 'admin');
    assert.equal(admin.length, 1, JSON.stringify(shown.events));
    assert.deepEqual(admin[0], {
      seq: admin[0].seq,
      type: 'retry_requested',
      status: null,
      at: admin[0].at,
      cause: 'admin',
      request_id: retried.headers.get('x-request-id'),
    });
    // No balance and no status moved: the deposit is still pending and credits nothing.
    assert.equal(shown.status, 'pending');
    assert.equal(shown.attempts >= letter.attempts, true);
    assert.deepEqual(await balance(user), { available: 0, held: 0 });
  });

  test('no callback ever: the worker polls the bank past the deadline and settles', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 999_99);
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(shown.status, 'succeeded');
    assert.equal(shown.events.at(-1).cause, 'poll');
  });

  test('a callback delivered three times: applied once', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 777_77);
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(types(shown.events).filter((t) => t === 'transaction_succeeded').length, 1);
    // The duplicates come after the first; nothing signals that none is left, so give them a while.
    await elapse(scaled(200));
    assert.deepEqual(await balance(user), { available: 777_77, held: 0 });
  });
});

describe('the callback endpoint', () => {
  const payload = (reference: string, status: 'succeeded' | 'failed') => ({
    type: `transfer.${status}`,
    data: {
      reference,
      bank_reference: 'bank-ref-1',
      status,
      ...(status === 'failed' ? { failure_code: 'declined', failure_message: 'no' } : {}),
    },
  });
  const post = (callback: { headers: Record<string, string>; raw: string }) =>
    request('POST', '/webhooks/bank-callback', { raw: callback.raw, headers: callback.headers });

  test('three deliveries, concurrent and out of order: one result applies, the rest change nothing', async () => {
    const user = await createUser(request);
    const deposit = await create(user, 'deposits', 999_99);
    const success = signedCallback(payload(deposit.id, 'succeeded'));
    const answers = await Promise.all([post(success), post(success), post(success)]);
    assert.ok(answers.every((answer) => answer.status === 200));
    const late = await post(signedCallback(payload(deposit.id, 'failed')));
    assert.equal(late.status, 200);
    assert.equal(late.json.status, 'already_final');
    const shown = await final(user, 'deposits', deposit.id);
    assert.equal(shown.status, 'succeeded');
    assert.equal(
      types(shown.events).filter(
        (t) => t.startsWith('transaction_') && t !== 'transaction_created' && t !== 'transaction_processing',
      ).length,
      1,
    );
    assert.deepEqual(await balance(user), { available: 999_99, held: 0 });
    const inbox = await gateway.sql`SELECT count(*)::int AS n FROM webhook_inbox WHERE reference = ${deposit.id}`;
    assert.equal(inbox[0]?.n, 2);
  });

  test('a bad signature → 401, a malformed payload → 400, an unknown reference → 200 ignored', async () => {
    const bad = signedCallback(payload(crypto.randomUUID(), 'succeeded'), { secret: 'whsec_b3RoZXItc2VjcmV0' });
    assert.equal((await post(bad)).status, 401);
    const old = signedCallback(payload(crypto.randomUUID(), 'succeeded'), { at: new Date(Date.now() - 10 * 60_000) });
    assert.equal((await post(old)).status, 401);
    const malformed = signedCallback({ type: 'transfer.succeeded', data: { reference: 'not-a-uuid' } });
    const answer = await post(malformed);
    assert.equal(answer.status, 400);
    assert.equal(answer.json.error, 'validation_error');
    const unknown = await post(signedCallback(payload(crypto.randomUUID(), 'succeeded')));
    assert.equal(unknown.status, 200);
    assert.equal(unknown.json.status, 'ignored');
  });
});
