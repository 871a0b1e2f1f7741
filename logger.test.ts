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
