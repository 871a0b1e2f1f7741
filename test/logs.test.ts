import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from './support/bank.ts';
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
