import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import { verifyWebhook } from '../http/webhook-signature.ts';
import { createLogger } from '../logger.ts';
import { createBank, type BankCallback } from './bank.ts';
import { eventually, scaled } from '../test/support/time.ts';
import { CALLBACK_HOP, createCallbackSender } from './callback-sender.ts';
import { createScenarios } from './scenarios.ts';

const log = createLogger('silent');
const secret = `whsec_${Buffer.from('bank-callback-test-secret').toString('base64')}`;
const callback: BankCallback = {
  type: 'transfer.succeeded',
  timestamp: '2026-01-01T00:00:00.000Z',
  data: { reference: '0190d3a0-0000-7000-8000-000000000001', bank_reference: 'bnk_1', status: 'succeeded' },
};

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const receivers: { close(): void }[] = [];
after(() => receivers.forEach((receiver) => receiver.close()));

/** A gateway stand-in: answers the n-th request with `statuses[n]` (200 past the end; 0 never answers). */
async function startReceiver(statuses: number[] = []) {
  const received: Received[] = [];
  const connections: Socket[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks) });
      const status = statuses[received.length - 1] ?? 200;
      if (status !== 0) response.writeHead(status).end();
    });
  });
  server.on('connection', (socket: Socket) => connections.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const receiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/bank-callback`,
    received,
    connections,
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
  receivers.push(receiver);
  return receiver;
}

function sender(url: string, options: Partial<Parameters<typeof createCallbackSender>[0]> = {}) {
  return createCallbackSender({
    url,
    secret,
    log,
    backoff_ms_base: 5,
    backoff_ms_max: 20,
    timeout_ms: 1000,
    ...options,
  });
}

function verified(request: Received, secrets = [secret]) {
  return verifyWebhook({ headers: request.headers, rawBody: request.body, secrets, now_s: Date.now() / 1000 });
}

async function waitFor(predicate: () => boolean, timeout_ms = 2000): Promise<void> {
  await eventually(() => (predicate() ? true : undefined), timeout_ms);
}

test('a callback is posted as JSON, signed with the secret, and verifies', async () => {
  const receiver = await startReceiver();
  const callbacks = sender(receiver.url);
  assert.equal(await callbacks.deliver(callback, 1), 'delivered');
  const [request] = receiver.received;
  assert.ok(request);
  assert.equal(request.headers['content-type'], 'application/json');
  assert.match(String(request.headers['webhook-id']), /^msg_/);
  assert.equal(verified(request).ok, true);
  assert.equal(verified(request, [`whsec_${Buffer.from('another').toString('base64')}`]).ok, false);
  assert.deepEqual(JSON.parse(request.body.toString()), callback);
  await callbacks.stop();
});

test('callbacks one after another go out on one kept-alive connection, and stop closes it', async () => {
  const receiver = await startReceiver([200, 500, 200, 200]);
  const callbacks = sender(receiver.url);
  assert.equal(await callbacks.deliver(callback, 1), 'delivered');
  assert.equal(await callbacks.deliver(callback, 2), 'delivered');
  assert.equal(receiver.received.length, 4);
  for (const request of receiver.received) assert.equal(verified(request).ok, true);
  assert.equal(receiver.connections.length, 1);
  assert.equal(receiver.connections[0]!.destroyed, false);
  await callbacks.stop();
  // Well inside the pool's idle time (CALLBACK_HOP.idle_ms): only stop() can have closed it.
  assert.ok(scaled(500) < CALLBACK_HOP.idle_ms);
  await waitFor(() => receiver.connections[0]!.destroyed, 500);
});

test('a refused callback is retried with the same webhook-id until it is accepted', async () => {
  const receiver = await startReceiver([500, 500, 200]);
  const callbacks = sender(receiver.url);
  assert.equal(await callbacks.deliver(callback, 1), 'delivered');
  assert.equal(receiver.received.length, 3);
  const ids = new Set(receiver.received.map((request) => request.headers['webhook-id']));
  assert.equal(ids.size, 1);
  for (const request of receiver.received) assert.equal(verified(request).ok, true);
  await callbacks.stop();
});

test('a receiver that does not answer in time counts as a failed attempt', async () => {
  const receiver = await startReceiver([0, 200]);
  // The first attempt is never answered, so any timeout shows it; the second must be answered within it,
  // which a loaded machine did not always do in 50 ms.
  const callbacks = sender(receiver.url, { timeout_ms: scaled(500) });
  assert.equal(await callbacks.deliver(callback, 1), 'delivered');
  assert.equal(receiver.received.length, 2);
  await callbacks.stop();
});

test('a callback is given up after the last attempt, whether refused or unreachable', async () => {
  const receiver = await startReceiver([500, 503, 502, 500]);
  assert.equal(await sender(receiver.url, { attempts_max: 3 }).deliver(callback, 1), 'undelivered');
  assert.equal(receiver.received.length, 3);
  const unreachable = sender('http://127.0.0.1:9/webhooks/bank-callback', { attempts_max: 2 });
  assert.equal(await unreachable.deliver(callback, 1), 'undelivered');
});

test('a duplicate delivery sends the same webhook-id three times', async () => {
  const receiver = await startReceiver([200, 500, 200, 200]);
  const callbacks = sender(receiver.url);
  assert.equal(await callbacks.deliver(callback, 3), 'delivered');
  assert.equal(receiver.received.length, 4);
  assert.equal(new Set(receiver.received.map((request) => request.headers['webhook-id'])).size, 1);
  await callbacks.stop();
});

test('each delivery has its own webhook-id', async () => {
  const receiver = await startReceiver();
  const callbacks = sender(receiver.url);
  await Promise.all([callbacks.deliver(callback, 1), callbacks.deliver(callback, 1)]);
  assert.equal(new Set(receiver.received.map((request) => request.headers['webhook-id'])).size, 2);
  await callbacks.stop();
});

test('stop abandons pending retries at once, and later deliveries are not sent', async () => {
  const receiver = await startReceiver([500]);
  const callbacks = sender(receiver.url, { backoff_ms_base: 60_000, backoff_ms_max: 60_000 });
  const outcome = callbacks.deliver(callback, 1);
  await waitFor(() => receiver.received.length === 1);
  await callbacks.stop();
  assert.equal(await outcome, 'stopped');
  assert.equal(await callbacks.deliver(callback, 1), 'stopped');
  assert.equal(receiver.received.length, 1);
});

test('deliveries beyond the in-flight bound are dropped', async () => {
  const receiver = await startReceiver([0]);
  const callbacks = sender(receiver.url, { deliveries_max: 1, timeout_ms: 10_000 });
  const first = callbacks.deliver(callback, 1);
  assert.equal(await callbacks.deliver(callback, 1), 'dropped');
  await callbacks.stop();
  assert.equal(await first, 'stopped');
});

test('the bank settles a transfer and its signed callback reaches the receiver', async () => {
  const receiver = await startReceiver();
  const callbacks = sender(receiver.url);
  const scenarios = createScenarios({ seed: 'end-to-end', rates: { success: 1 }, delay_ms_min: 1, delay_ms_max: 5 });
  const bank = createBank({ scenarios, callbacks, log });
  const reference = '0190d3a0-0000-7000-8000-0000000000e2';
  const request = { reference, direction: 'credit' as const, amount: 666_66n, currency: 'EUR', account: 'acc' };
  const accepted = await bank.submit(request);
  assert.equal(accepted.kind, 'accepted');
  await waitFor(() => receiver.received.length === 1);
  const [delivery] = receiver.received;
  assert.ok(delivery && verified(delivery).ok);
  assert.deepEqual(JSON.parse(delivery.body.toString()).data, {
    reference,
    bank_reference: accepted.kind === 'accepted' ? accepted.bank_reference : undefined,
    status: 'failed',
    failure_code: 'declined',
    failure_message: 'The bank declined the transfer.',
  });
  bank.stop();
  await callbacks.stop();
});
