import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { client, createUser, startTestGateway } from './support/gateway.ts';
import { captureLines } from './support/log-capture.ts';
import { elapse, eventually, scaled } from './support/time.ts';

test('a client that hangs up in the middle of its body is logged as 499 at info, not as a server error', async () => {
  const log = captureLines();
  const gateway = await startTestGateway({ LOG_LEVEL: 'info' }, log.stream);
  try {
    const user = await createUser(client(gateway.url), 'Hangs Up');
    const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      [
        'POST /api/v1/deposits HTTP/1.1',
        'Host: 127.0.0.1',
        `Authorization: Bearer ${user.api_key}`,
        'Content-Type: application/json',
        `Idempotency-Key: ${crypto.randomUUID()}`,
        'Content-Length: 100',
        '',
        '{"amount": 1',
      ].join('\r\n'),
    );
    // The gateway reading the headers is not visible from here: a moment, so that it hangs up mid-body.
    await elapse(scaled(100));
    socket.destroy();
    const line = await eventually(() => log.lines().find((entry) => entry.path === '/api/v1/deposits'));
    assert.equal(line.status, 499);
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'client closed the request');
    assert.deepEqual(
      log.lines().filter((entry) => entry.level === 'error' || entry.level === 'fatal'),
      [],
      'no error line',
    );
  } finally {
    await gateway.close();
  }
});
