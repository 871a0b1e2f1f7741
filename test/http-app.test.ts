import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import Router from '@koa/router';
import { createApp } from '../http/app.ts';
import { createLogger } from '../logger.ts';
import { bankErrors } from '../simulator/bank-errors.ts';
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

test('a 5xx the code chose is a warning with a compact error; only an unexpected failure is an error, with its stack', async () => {
  const log = captureLines();
  const router = new Router();
  router.get('/bank-timeout', () => {
    throw bankErrors.bankTimeout();
  });
  router.get('/bug', () => {
    throw new TypeError('a bug');
  });
  const app = createApp({ log: createLogger('info', log.stream), middleware: [], routers: [router] });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.equal((await fetch(`${base}/bank-timeout`)).status, 504);
    assert.equal((await fetch(`${base}/bug`)).status, 500);
    const [expected, bug] = ['/bank-timeout', '/bug'].map((path) => log.lines().find((line) => line.path === path));
    assert.equal(expected?.level, 'warn');
    assert.deepEqual(expected?.err, { type: 'ApiError', message: 'The bank did not answer.', code: 'bank_timeout' });
    assert.equal(bug?.level, 'error');
    const { type, message, stack } = bug?.err as { type: string; message: string; stack: string };
    assert.deepEqual([type, message], ['TypeError', 'a bug']);
    assert.match(stack, /^TypeError: a bug\n\s+at /);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});
