import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from './logger.ts';
import { captureLines } from './test/support/log-capture.ts';

test('keys, secrets, signatures and Authorization never reach a log line', () => {
  const { stream, lines } = captureLines();
  const log = createLogger('info', stream).child({ module: 'test' });
  log.info({
    req: { headers: { authorization: 'Bearer pgw_secret', 'webhook-signature': 'v1,abc' } },
    user: { api_key: 'pgw_secret2' },
    bank: { secret: 'whsec_x' },
  });
  const text = JSON.stringify(lines());
  assert.doesNotMatch(text, /pgw_secret|whsec_x|v1,abc/);
  assert.match(text, /\[redacted\]/);
  assert.equal(lines()[0]?.module, 'test');
});

test('every line carries the time it was written, as an ISO 8601 string', async () => {
  const { stream, lines } = captureLines();
  const log = createLogger('info', stream);
  const started = Date.now();
  log.info('one');
  log.info('two');
  // Time passing between two lines is what the check below is about.
  await new Promise((resolve) => setTimeout(resolve, 5));
  log.info('three');
  const times = lines().map((line) => String(line.time));
  for (const time of times) assert.match(time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  const [one, two, three] = times.map((time) => Date.parse(time));
  assert.ok(one! >= started && two! >= one! && three! >= two! + 5 && three! <= Date.now());
});
