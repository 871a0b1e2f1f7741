import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import { createLogger } from '../logger.ts';
import { eventually, scaled } from '../test/support/time.ts';
import { BANK_HOP, createBankClient } from './bank-client.ts';

// The bank client keeps its connections to the bank alive between calls, cuts a call the bank does
// not answer at BANK_TIMEOUT_MS, and answers every call without an answer as transient, as it did
// with fetch: the payment worker tries again under the same reference, or polls.

const log = createLogger('silent');
const transaction = {
  id: '0190d3a0-0000-7000-8000-0000000000b1',
  type: 'deposit' as const,
  amount: 1000n,
  currency: 'EUR',
  user_id: 'user-1',
};

interface Bank {
  url: string;
  connections: Socket[];
  requests: { method: string; url: string; connection: number; body: string }[];
  close(): void;
}

const banks: Bank[] = [];
after(() => banks.forEach((bank) => bank.close()));

/** A bank stand-in on loopback: `answer` decides each request's fate (by its index). */
async function startBank(
  answer: (request: IncomingMessage, response: ServerResponse, index: number) => void = ok,
): Promise<Bank> {
  const bank: Bank = { url: '', connections: [], requests: [], close: () => undefined };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      bank.requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        connection: bank.connections.indexOf(request.socket),
        body: Buffer.concat(chunks).toString(),
      });
      answer(request, response, bank.requests.length - 1);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => bank.connections.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  bank.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  bank.close = () => {
    server.close();
    server.closeAllConnections();
  };
  banks.push(bank);
  return bank;
}

/** The bank's happy answers: a transfer accepted, its status succeeded, health ok. */
function ok(request: IncomingMessage, response: ServerResponse) {
  response.setHeader('content-type', 'application/json');
  if (request.method === 'POST') return void response.writeHead(202).end('{"bank_reference":"bnk_1"}');
  if (request.url === '/health') return void response.end('{"status":"ok"}');
  response.end('{"bank_reference":"bnk_1","status":"succeeded"}');
}

function client(url: string, timeout_ms = scaled(5000)) {
  return createBankClient({ base_url: url, timeout_ms, breaker_reset_ms: 10_000, calls_in_flight_max: 4, log });
}

test('sequential calls to the bank, health probes included, share one kept-alive connection', async () => {
  const bank = await startBank();
  const bankClient = client(bank.url);
  assert.deepEqual(await bankClient.submit(transaction), { kind: 'accepted', bank_reference: 'bnk_1' });
  assert.deepEqual(await bankClient.status(transaction.id), {
    kind: 'found',
    status: 'succeeded',
    bank_reference: 'bnk_1',
  });
  assert.equal(await bankClient.reachable(scaled(1000)), true);
  assert.deepEqual(await bankClient.submit({ ...transaction, id: 'another' }), {
    kind: 'accepted',
    bank_reference: 'bnk_1',
  });
  assert.equal(bank.connections.length, 1);
  assert.deepEqual(
    bank.requests.map((request) => [request.method, request.url, request.connection]),
    [
      ['POST', '/bank/v1/transfers', 0],
      ['GET', `/bank/v1/transfers/${transaction.id}`, 0],
      ['GET', '/health', 0],
      ['POST', '/bank/v1/transfers', 0],
    ],
  );
  assert.deepEqual(JSON.parse(bank.requests[0]!.body), {
    reference: transaction.id,
    direction: 'credit',
    amount: 1000,
    currency: 'EUR',
    account: 'user-1',
  });
  bankClient.shutdown();
});

test('a bank that does not answer is cut at the timeout: transient, as before', async () => {
  const bank = await startBank((request, response, index) => (index === 0 ? undefined : ok(request, response)));
  const timeout_ms = scaled(300);
  const bankClient = client(bank.url, timeout_ms);
  const started = performance.now();
  assert.deepEqual(await bankClient.submit(transaction), {
    kind: 'transient',
    error: `no answer within ${timeout_ms} ms`,
  });
  assert.ok(performance.now() - started < scaled(5000));
  // The stalled connection is dropped, and the next call gets a new one.
  assert.equal((await bankClient.status(transaction.id)).kind, 'found');
  assert.equal(bank.requests[1]!.connection, 1);
  bankClient.shutdown();
});

test('a 5xx is transient, a 4xx the bank’s verdict: the status handling is as before', async () => {
  const bank = await startBank((request, response, index) => {
    if (index === 0) return void response.writeHead(503).end();
    if (index === 1) return void response.writeHead(404).end();
    response.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"invalid","message":"no"}');
  });
  const bankClient = client(bank.url);
  assert.deepEqual(await bankClient.submit(transaction), { kind: 'transient', error: 'bank answered 503' });
  assert.deepEqual(await bankClient.status(transaction.id), { kind: 'not_found' });
  assert.deepEqual(await bankClient.submit(transaction), {
    kind: 'rejected',
    code: 'bank_invalid',
    message: 'The bank refused the transfer (422: no).',
  });
  assert.equal(bank.connections.length, 1);
  bankClient.shutdown();
});

test('a transfer whose kept-alive connection the bank drops is not sent again by the client: transient', async () => {
  const bank = await startBank((request, response, index) => {
    if (index === 1) return void request.socket.destroy();
    ok(request, response);
  });
  const bankClient = client(bank.url);
  assert.equal((await bankClient.submit(transaction)).kind, 'accepted');
  const outcome = await bankClient.submit(transaction);
  assert.equal(outcome.kind, 'transient');
  assert.match(outcome.kind === 'transient' ? outcome.error : '', /^connection failed: /);
  // The POST went out once: repeating it is the payment worker's decision (same reference), not the socket's.
  assert.equal(bank.requests.length, 2);
  bankClient.shutdown();
});

test('shutdown closes the connections to the bank at once, not when they would idle out', async () => {
  const bank = await startBank();
  const bankClient = client(bank.url);
  await bankClient.submit(transaction);
  assert.equal(bank.connections[0]!.destroyed, false);
  bankClient.shutdown();
  // Well inside the pool's idle time: only the shutdown can have closed it.
  assert.ok(scaled(500) < BANK_HOP.idle_ms);
  await eventually(() => (bank.connections[0]!.destroyed ? true : undefined), 500);
  assert.equal((await bankClient.submit(transaction)).kind, 'transient');
  assert.equal(bank.requests.length, 1);
});
