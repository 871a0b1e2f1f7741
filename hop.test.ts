import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import { createHop, HopError } from './hop.ts';
import { eventually, scaled } from './test/support/time.ts';

// The hops between our processes share one keep-alive pool per hop: these tests run real servers on
// loopback and count the connections they see.

interface TestServer {
  url: string;
  /** Connections the server accepted, in order. */
  connections: Socket[];
  /** Requests received, with the index of the connection each came on. */
  requests: { method: string; url: string; connection: number; body: string }[];
  close(): void;
}

const servers: TestServer[] = [];
after(() => servers.forEach((server) => server.close()));

/** A server that answers each request with `answer` (default: 200 "ok"). */
async function startServer(
  answer: (request: IncomingMessage, response: ServerResponse, index: number) => void = (_, response) =>
    response.end('ok'),
): Promise<TestServer> {
  const connections: Socket[] = [];
  const requests: TestServer['requests'] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        connection: connections.indexOf(request.socket),
        body: Buffer.concat(chunks).toString(),
      });
      answer(request, response, requests.length - 1);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => connections.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const handle: TestServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections,
    requests,
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
  servers.push(handle);
  return handle;
}

const openConnections = (server: TestServer) => server.connections.filter((socket) => !socket.destroyed).length;

test('sequential requests go out on one kept-alive connection, with their method, path, headers and body', async () => {
  const server = await startServer((request, response) =>
    response.writeHead(201, { 'x-echo': request.headers['x-test'] ?? '' }).end(`${request.method} ${request.url}`),
  );
  const hop = createHop({ sockets_max: 4, timeout_ms: scaled(5000) });
  for (let i = 0; i < 5; i += 1) {
    const answer = await hop.request(server.url, `/things/${i}?q=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-test': `t${i}` },
      body: JSON.stringify({ i }),
    });
    assert.equal(answer.status, 201);
    assert.equal(answer.headers['x-echo'], `t${i}`);
    assert.equal(answer.body.toString(), `POST /things/${i}?q=1`);
  }
  assert.equal(server.connections.length, 1);
  assert.deepEqual(
    server.requests.map((request) => [request.connection, request.body]),
    [0, 1, 2, 3, 4].map((i) => [0, JSON.stringify({ i })]),
  );
  hop.close();
});

test('concurrent requests open at most sockets_max connections; the rest wait their turn', async () => {
  const server = await startServer((_, response) => setImmediate(() => response.end('ok')));
  const hop = createHop({ sockets_max: 3, timeout_ms: scaled(5000) });
  const answers = await Promise.all(Array.from({ length: 20 }, () => hop.request(server.url, '/', { method: 'GET' })));
  assert.ok(answers.every((answer) => answer.status === 200));
  assert.equal(server.requests.length, 20);
  assert.equal(server.connections.length, 3);
  hop.close();
});

test('a server that does not answer is cut at the timeout, and the stalled connection is not reused', async () => {
  const server = await startServer((request, response, index) => {
    if (index === 0) return; // never answered
    response.end('ok');
  });
  const timeout_ms = scaled(300);
  const hop = createHop({ sockets_max: 4, timeout_ms });
  const started = performance.now();
  const error = await hop.request(server.url, '/stall', { method: 'POST', body: '{}' }).catch((e: unknown) => e);
  assert.ok(error instanceof HopError);
  assert.equal(error.failure, 'timeout');
  assert.equal(error.timedOut, true);
  assert.equal(error.message, `no answer within ${timeout_ms} ms`);
  assert.ok(performance.now() - started >= timeout_ms - 5);
  await eventually(() => (server.connections[0]!.destroyed ? true : undefined));
  assert.equal((await hop.request(server.url, '/', { method: 'GET' })).status, 200);
  assert.equal(server.requests[1]!.connection, 1);
  hop.close();
});

test('headers that do not come within the response timeout end the request as response_timeout', async () => {
  const server = await startServer(() => undefined);
  const hop = createHop({ sockets_max: 1, timeout_ms: scaled(10_000), response_timeout_ms: scaled(200) });
  const error = await hop.request(server.url, '/', { method: 'GET' }).catch((e: unknown) => e);
  assert.ok(error instanceof HopError);
  assert.equal(error.failure, 'response_timeout');
  hop.close();
});

test('a refused connection is a connect failure with its code: nothing was sent', async () => {
  const server = await startServer();
  server.close();
  const hop = createHop({ sockets_max: 1, timeout_ms: scaled(5000) });
  const error = await hop.request(server.url, '/', { method: 'POST', body: 'x' }).catch((e: unknown) => e);
  assert.ok(error instanceof HopError);
  assert.equal(error.failure, 'connect');
  assert.equal(error.code, 'ECONNREFUSED');
  hop.close();
});

/** A server that drops the connection of its second request without answering (as if closed idle as it came). */
async function droppingSecondRequest() {
  return startServer((request, response, index) => {
    if (index === 1) request.socket.destroy();
    else response.end('ok');
  });
}

test('a GET whose reused socket is dropped is sent again once, on a new connection', async () => {
  const server = await droppingSecondRequest();
  const hop = createHop({ sockets_max: 1, timeout_ms: scaled(5000) });
  assert.equal((await hop.request(server.url, '/a', { method: 'GET' })).status, 200);
  const answer = await hop.request(server.url, '/b', { method: 'GET' });
  assert.equal(answer.status, 200);
  assert.deepEqual(
    server.requests.map((request) => [request.url, request.connection]),
    [
      ['/a', 0],
      ['/b', 0],
      ['/b', 1],
    ],
  );
  hop.close();
});

test('a POST whose reused socket is dropped is not sent again: a reset, marked reused', async () => {
  const server = await droppingSecondRequest();
  const hop = createHop({ sockets_max: 1, timeout_ms: scaled(5000) });
  assert.equal((await hop.request(server.url, '/a', { method: 'POST', body: '1' })).status, 200);
  const error = await hop.request(server.url, '/b', { method: 'POST', body: '2' }).catch((e: unknown) => e);
  assert.ok(error instanceof HopError);
  assert.equal(error.failure, 'reset');
  assert.equal(error.reused, true);
  assert.equal(error.timedOut, false);
  assert.equal(server.requests.length, 2);
  hop.close();
});

test("with discard_body a peer's answer is read and dropped: its status comes back, its body is not kept", async () => {
  // 8 MiB in 64 KiB chunks: a peer that is not ours may answer anything.
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const server = await startServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' });
    for (let i = 0; i < 128; i += 1) response.write(chunk);
    response.end();
  });
  const hop = createHop({ sockets_max: 1, timeout_ms: scaled(10_000), discard_body: true });
  const first = await hop.request(server.url, '/big', { method: 'POST', body: '{}' });
  assert.equal(first.status, 200);
  assert.equal(first.body.length, 0);
  // Read to its end: the connection is kept alive for the next request.
  assert.equal((await hop.request(server.url, '/again', { method: 'POST', body: '{}' })).status, 200);
  assert.deepEqual(
    server.requests.map((request) => request.connection),
    [0, 0],
  );
  hop.close();
});

test('close ends requests in flight or queued, and every connection, idle or busy, at once', async () => {
  const server = await startServer((request, response) => {
    if (request.url === '/stall') return;
    response.end('ok');
  });
  // An idle time far beyond the test's own deadline: only close() can end these connections in time.
  const hop = createHop({ sockets_max: 2, timeout_ms: 120_000, idle_ms: 120_000 });
  await Promise.all([hop.request(server.url, '/', { method: 'GET' }), hop.request(server.url, '/', { method: 'GET' })]);
  const stalled = hop.request(server.url, '/stall', { method: 'GET' }).catch((e: unknown) => e);
  const queued = [1, 2].map(() => hop.request(server.url, '/stall', { method: 'GET' }).catch((e: unknown) => e));
  await eventually(() => (server.requests.length === 4 ? true : undefined));
  assert.equal(hop.sockets(), 2);
  hop.close();
  for (const error of await Promise.all([stalled, ...queued])) {
    assert.ok(error instanceof HopError);
    assert.equal(error.failure, 'aborted');
  }
  await eventually(() => (openConnections(server) === 0 && hop.sockets() === 0 ? true : undefined));
  const later = await hop.request(server.url, '/', { method: 'GET' }).catch((e: unknown) => e);
  assert.ok(later instanceof HopError && later.failure === 'aborted');
});
