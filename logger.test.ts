import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from './logger.ts';

/** A pino destination that keeps every line. */
export function captureLines(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, lines };
}

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
