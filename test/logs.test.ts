import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from './support/bank.ts';
import { scaled } from './support/time.ts';
import { ADMIN_KEY, client, createUser, OBEDIENT_BANK, startTestGateway } from './support/gateway.ts';
import { captureLines, duplicateKeys } from './support/log-capture.ts';

test('the logs follow one payment end to end: request → actor → bank call → callback → settlement', async () => {
  const { stream, lines, raw } = captureLines();
  const gateway = await startTestGateway(
    { LOG_LEVEL: 'info', BANK_MIN_DELAY_MS: '5', BANK_MAX_DELAY_MS: '20', ...OBEDIENT_BANK },
    stream,
  );
  try {
    const request = client(gateway.url);
    const user = await createUser(request);
    const answer = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 4242, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    });
    const id = answer.json.id as string;
    const requestId = answer.headers.get('x-request-id');
    const mine = () => lines().filter((line) => line.transaction_id === id);
    const trail = await eventually(() => {
      const found = mine();
      // The callback's own line comes after the settlement it caused has been journaled.
      const settled = found.some((line) => line.msg === 'journaled' && line.event === 'transaction_succeeded');
      return settled && found.some((line) => line.msg === 'callback applied') ? found : undefined;
    });
    const has = (predicate: (line: Record<string, unknown>) => boolean, what: string) =>
      assert.ok(trail.some(predicate), `${what} is missing from:\n${trail.map((l) => JSON.stringify(l)).join('\n')}`);
    has((l) => l.msg === 'request' && l.request_id === requestId && l.path === '/api/v1/deposits', 'the request line');
    has((l) => l.msg === 'journaled' && l.event === 'transaction_created' && l.request_id === requestId, 'the actor');
    has((l) => l.msg === 'bank call' && l.outcome === 'accepted', 'the bank call');
    has((l) => l.msg === 'callback applied', 'the callback');
    has((l) => l.event === 'transaction_succeeded' && l.cause === 'bank_callback', 'the settlement');
    assertNoRepeatedKeys(raw());
  } finally {
    await gateway.close();
  }
});

test('a bank timeout and a simulated 503 are warnings with compact errors; nothing is logged as an error', async () => {
  const { stream, lines } = captureLines();
  const gateway = await startTestGateway(
    {
      LOG_LEVEL: 'info',
      // The magic amounts below make the bank hold its first answer (no answer in BANK_TIMEOUT_MS) or
      // answer 503 once; the retry, soon after, is accepted.
      BANK_TIMEOUT_MS: String(scaled(300)),
      BANK_BACKOFF_BASE_MS: '10',
      BANK_BACKOFF_MAX_MS: '50',
      ...OBEDIENT_BANK,
    },
    stream,
  );
  try {
    const request = client(gateway.url);
    const user = await createUser(request);
    const deposit = async (amount: number) => {
      const answer = await request('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount, currency: 'USD' },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(answer.status, 202, answer.text);
      return answer.json.id as string;
    };
    const timedOut = await deposit(408_01);
    const unavailable = await deposit(503_01);
    const bankCalls = (id: string) => lines().filter((line) => line.msg === 'bank call' && line.transaction_id === id);
    // Each payment's first call failed and its retry was accepted; the bank saw the held request end.
    await eventually(() =>
      [timedOut, unavailable].every((id) => bankCalls(id).some((line) => line.outcome === 'accepted')) &&
      lines().some((line) => (line.err as { code?: string } | undefined)?.code === 'bank_timeout')
        ? true
        : undefined,
    );

    const [timeout] = bankCalls(timedOut);
    assert.equal(timeout?.level, 'warn');
    assert.equal(timeout?.outcome, 'transient');
    assert.match(String(timeout?.error), /^no answer within \d+ ms$/);
    const [refused] = bankCalls(unavailable);
    assert.equal(refused?.level, 'warn');
    assert.equal(refused?.error, 'bank answered 503');

    // The simulator says which faults it injected, and its access log carries each error in a few fields.
    const faults = lines().filter((line) => line.msg === 'simulated fault');
    assert.deepEqual(
      faults.map((line) => [line.level, line.reference, line.answer]).sort(),
      [
        ['warn', timedOut, 'no_answer'],
        ['warn', unavailable, 'unavailable'],
      ].sort(),
    );
    const bankAnswer = lines().find((line) => line.module === 'bank-http' && line.status === 503);
    assert.equal(bankAnswer?.level, 'warn');
    assert.deepEqual(bankAnswer?.err, {
      type: 'ApiError',
      message: 'The bank is unavailable; retry with the same reference.',
      code: 'bank_unavailable',
    });
    // The request the bank held ends when the gateway gives up on it (499, the client gone).
    const held = lines().find((line) => line.module === 'bank-http' && line.status !== 503 && line.err);
    assert.deepEqual(held?.err, { type: 'ApiError', message: 'The bank did not answer.', code: 'bank_timeout' });
    assert.notEqual(held?.level, 'error');

    assert.deepEqual(
      lines().filter((line) => line.level === 'error' || line.level === 'fatal'),
      [],
      'an expected failure was logged as an error',
    );
  } finally {
    await gateway.close();
  }
});

/** Fails on a line that holds one key twice (`JSON.parse` would quietly keep the last). */
function assertNoRepeatedKeys(raw: readonly string[]): void {
  const repeated = raw.flatMap((line) => duplicateKeys(line).map((key) => `${key} in ${line}`));
  assert.deepEqual(repeated, [], 'a log line repeats a key');
}

test('the duplicate-key check sees what JSON.parse hides', () => {
  assert.deepEqual(duplicateKeys('{"module":"bank","a":{"b":1,"b":2},"module":"bank-http"}'), ['a.b', 'module']);
  const escaped = JSON.stringify({ module: 'http', list: [{ x: '\\' }, { x: 1 }], msg: 'a "quoted", text}' });
  assert.deepEqual(duplicateKeys(escaped), []);
});

test('every line names its module once: the bank simulator and both rate limiters, Redis down', async () => {
  const { stream, lines, raw } = captureLines();
  // An unreachable Redis makes both limiters' counters log, and the in-process bank logs when it listens.
  const gateway = await startTestGateway({ LOG_LEVEL: 'info', REDIS_URL: 'redis://127.0.0.1:1' }, stream);
  try {
    const request = client(gateway.url);
    assert.equal((await request('GET', '/api/v1/me', { key: 'pgw_wrong' })).status, 401);
    assert.equal((await request('GET', '/api/v1/admin/dead-letters', { key: ADMIN_KEY })).status, 200);
    const limiters = await eventually(() => {
      const down = lines().filter((line) => line.msg === 'rate limits cannot reach redis');
      return down.length >= 2 ? down : undefined;
    });
    assert.deepEqual(limiters.map((line) => [line.module, line.limits]).sort(), [
      ['rate-limit', 'api'],
      ['rate-limit', 'auth_failures'],
    ]);
    const listening = lines().find((line) => line.msg === 'bank listening');
    assert.equal(listening?.module, 'bank-http');
    assertNoRepeatedKeys(raw());
  } finally {
    await gateway.close();
  }
});
