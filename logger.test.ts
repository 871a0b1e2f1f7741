import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createLogger, logFormat } from './logger.ts';
import { bankErrors } from './simulator/bank-errors.ts';
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

test('LOG_FORMAT decides when set; otherwise readable lines on a terminal and JSON elsewhere', () => {
  assert.equal(logFormat(undefined, true), 'pretty');
  assert.equal(logFormat(undefined, false), 'json');
  assert.equal(logFormat('json', true), 'json');
  assert.equal(logFormat('pretty', false), 'pretty');
});

test('the readable format is one line: time, level, module, message, the error in words, then the fields', () => {
  const { stream, raw } = captureLines();
  const log = createLogger('info', stream, 'pretty').child({ module: 'bank-http' });
  log.warn({ status: 503, err: apiError() }, 'request refused');
  assert.equal(raw().length, 1);
  assert.match(
    raw()[0]!,
    /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] WARN: bank-http: request refused \(ApiError bank_unavailable: The bank is unavailable; retry with the same reference\.\) \{"status":503\}$/,
  );
  assert.ok(!raw()[0]!.includes('\u001b['), 'no colour codes outside a terminal');
});

test("the readable format shows an unexpected error's stack under its line", () => {
  const { stream, raw } = captureLines();
  createLogger('info', stream, 'pretty').error({ err: new TypeError('a bug') }, 'payment worker failed');
  const [line, stackHead, frame] = raw();
  assert.match(line!, /ERROR: payment worker failed \(TypeError: a bug\)/);
  assert.equal(stackHead, '    err: TypeError: a bug');
  assert.match(frame!, /^ {8}at /);
});

/** The simulated bank's 503, as its server throws it. */
function apiError() {
  return bankErrors.bankUnavailable();
}

/** A server that accepts requests and never answers them, on a free port; `close` ends it. */
async function silentServer(): Promise<{ url: string; close: () => void }> {
  const server = createServer(() => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => (server.closeAllConnections(), server.close()) };
}

test('errors are logged as type, message, code and cause: a timeout is not a DOMException with 25 constants', async () => {
  const { stream, lines } = captureLines();
  const log = createLogger('info', stream);
  const server = await silentServer();
  try {
    const timeout = await fetch(server.url, { signal: AbortSignal.timeout(50) }).catch((error: unknown) => error);
    log.warn({ err: timeout }, 'timed out');
  } finally {
    server.close();
  }
  const refused = await fetch(server.url).catch((error: unknown) => error);
  log.warn({ err: refused }, 'refused');
  log.warn({ err: apiError() }, 'answered 503');
  log.warn({ err: 'already a message' }, 'text');
  const [timedOut, connectionRefused, answered, text] = lines().map((line) => line.err);
  assert.deepEqual(timedOut, { type: 'TimeoutError', message: 'The operation was aborted due to timeout' });
  assert.deepEqual(connectionRefused, {
    type: 'TypeError',
    message: 'fetch failed',
    cause: {
      type: 'Error',
      message: `connect ECONNREFUSED ${new URL(server.url).host}`,
      code: 'ECONNREFUSED',
    },
  });
  assert.deepEqual(answered, {
    type: 'ApiError',
    message: 'The bank is unavailable; retry with the same reference.',
    code: 'bank_unavailable',
  });
  assert.equal(text, 'already a message');
});

test('an unexpected error keeps its stack; a long chain of causes ends with a message', () => {
  const { stream, lines } = captureLines();
  const log = createLogger('info', stream);
  const root = new Error('root');
  const chain = new Error('one', { cause: new Error('two', { cause: new Error('three', { cause: root }) }) });
  log.error({ err: new TypeError('undefined is not a function') }, 'bug');
  log.error({ err: chain }, 'chain');
  log.error({ err: new Error('with a value', { cause: { reason: 42 } }) }, 'value');
  const [bug, nested, value] = lines().map((line) => line.err as Record<string, unknown>);
  assert.equal(bug?.type, 'TypeError');
  assert.match(String(bug?.stack), /^TypeError: undefined is not a function\n\s+at /);
  const three = (nested?.cause as { cause: Record<string, unknown> }).cause;
  assert.equal(three.message, 'three');
  assert.equal(three.cause, 'root');
  assert.equal(value?.cause, '{ reason: 42 }');
});
