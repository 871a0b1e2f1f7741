import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from './support/bank.ts';
import { client, createUser, OBEDIENT_BANK, startTestGateway } from './support/gateway.ts';
import { captureLines } from './support/log-capture.ts';

test('the logs follow one payment end to end: request → actor → bank call → callback → settlement', async () => {
  const { stream, lines } = captureLines();
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
  } finally {
    await gateway.close();
  }
});
