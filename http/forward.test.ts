import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import type { Context } from 'koa';
import { createLogger } from '../logger.ts';
import { eventually, scaled } from '../test/support/time.ts';
import { ApiError } from './errors.ts';
import { createApp } from './app.ts';
import { createForwarder, FORWARD_HOP, INTERNAL_PATH, type Command } from './forward.ts';

// Forwarding to the owner of a shard on kept-alive connections: what the owner receives, how it is
// answered, and how a request without an answer is classified (as it was with fetch): a read or a
// refused connection looks for the owner again, a write that may have arrived is `outcome_unknown`.

const log = createLogger('silent');

interface Owner {
  url: string;
  connections: Socket[];
  requests: { method: string; url: string; headers: IncomingMessage['headers']; connection: number; body: string }[];
  close(): void;
}

const owners: Owner[] = [];
after(() => owners.forEach((owner) => owner.close()));

async function startOwner(
  answer: (request: IncomingMessage, response: ServerResponse, index: number) => void = (_, response) =>
    response.writeHead(200, { 'content-type': 'application/json', 'x-private': 'no' }).end('{"balance":"1.00"}'),
): Promise<Owner> {
  const owner: Owner = { url: '', connections: [], requests: [], close: () => undefined };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      owner.requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        connection: owner.connections.indexOf(request.socket),
        body: Buffer.concat(chunks).toString(),
      });
      answer(request, response, owner.requests.length - 1);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => owner.connections.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  owner.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  owner.close = () => {
    server.close();
    server.closeAllConnections();
  };
  owners.push(owner);
  return owner;
}

function forwarder(
  url: string,
  options: { timeout_ms?: number; wait_ms?: number } = {},
  secret = 'forward-test-secret',
) {
  return createForwarder({
    leases: {
      shards: 64,
      owns: () => false,
      ownerOf: () => ({ id: 'owner', url }),
      refresh: () => Promise.resolve(),
    },
    instance: 'edge',
    secret,
    timeout_ms: options.timeout_ms ?? scaled(5000),
    wait_ms: options.wait_ms ?? 0,
    log,
  });
}

/** Just what `toOwner` reads and writes of a Koa context. */
function context(method: string, url: string, headers: Record<string, string> = {}, body?: string) {
  const answer: Record<string, string> = {};
  const ctx = {
    method,
    originalUrl: url,
    state: { requestId: 'req-0001', rawBody: body === undefined ? undefined : Buffer.from(body) },
    get: (name: string) => headers[name.toLowerCase()] ?? '',
    set: (name: string, value: string) => void (answer[name.toLowerCase()] = value),
    status: 404,
    body: undefined as unknown,
  };
  return { ctx: ctx as unknown as Context & typeof ctx, answer };
}

test('forwarded commands reach the owner on one kept-alive connection, signed, with the request id; the answer comes back', async () => {
  const owner = await startOwner();
  const forward = forwarder(owner.url);
  for (let i = 0; i < 3; i += 1) {
    const { ctx, answer } = context(
      'POST',
      `/api/v1/transactions?i=${i}`,
      { authorization: 'Bearer k', 'content-type': 'application/json', 'idempotency-key': `key-${i}` },
      `{"i":${i}}`,
    );
    assert.equal(await forward.toOwner(ctx, { kind: 'test', user_id: 'user-1', i } as Command), true);
    assert.equal(ctx.status, 200);
    assert.equal((ctx.body as Buffer).toString(), '{"balance":"1.00"}');
    assert.deepEqual(answer, { 'content-type': 'application/json' });
  }
  assert.equal(owner.connections.length, 1);
  const [first] = owner.requests;
  assert.equal(first!.method, 'POST');
  assert.equal(first!.url, INTERNAL_PATH);
  assert.deepEqual(JSON.parse(first!.body), {
    request_id: 'req-0001',
    command: { kind: 'test', user_id: 'user-1', i: 0 },
  });
  // The edge authenticated the client: its credentials and body stay there.
  assert.equal(first!.headers['authorization'], undefined);
  assert.equal(first!.headers['idempotency-key'], undefined);
  assert.equal(first!.headers['x-request-id'], 'req-0001');
  assert.match(String(first!.headers['x-gateway-forwarded']), /^edge \d+ [\w-]+$/);
  forward.close();
});

/** An owner answering forwarded commands with `serve()` (as the gateway does), and what its handler ran. */
async function startServingOwner(secret = 'forward-test-secret') {
  const ran: Command[] = [];
  const served = createForwarder({
    leases: { shards: 64, owns: () => true, ownerOf: () => undefined, refresh: () => Promise.resolve() },
    instance: 'owner',
    secret,
    timeout_ms: scaled(5000),
    wait_ms: 0,
    log,
  });
  served.handle('test', (ctx, command) => {
    ran.push(command);
    ctx.status = 202;
    ctx.body = { ran: command.kind, request_id: ctx.state.requestId };
    return Promise.resolve();
  });
  const app = createApp({ log, middleware: [served.serve()], routers: [] });
  const server = createServer(app.callback());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  owners.push({ url, connections: [], requests: [], close: () => void server.close() });
  return { url, ran };
}

test('the owner runs a signed command as sent, and answers with the request id of the client', async () => {
  const owner = await startServingOwner();
  const forward = forwarder(owner.url);
  const { ctx } = context('POST', '/w', {}, '{}');
  assert.equal(await forward.toOwner(ctx, { kind: 'test', user_id: 'user-1' }), true);
  assert.equal(ctx.status, 202);
  assert.deepEqual(JSON.parse((ctx.body as Buffer).toString()), { ran: 'test', request_id: 'req-0001' });
  assert.deepEqual(owner.ran, [{ kind: 'test', user_id: 'user-1' }]);
  forward.close();
});

test('an unsigned, forged, tampered or stale command is a 404 at the owner and runs nothing', async () => {
  const owner = await startServingOwner();
  const body = JSON.stringify({ request_id: 'req-0001', command: { kind: 'test', user_id: 'user-1' } });
  // A forwarder with another key signs validly for itself: the owner must not take it.
  const stranger = await startOwner();
  await forwarder(stranger.url, {}, 'another-secret').toOwner(context('POST', '/w', {}, '{}').ctx, {
    kind: 'test',
    user_id: 'user-1',
  });
  const strangers = String(stranger.requests[0]!.headers['x-gateway-forwarded']);
  const [, at, mac] = strangers.split(' ');
  const attempts: Record<string, string>[] = [
    {},
    { 'x-gateway-forwarded': 'garbage' },
    { 'x-gateway-forwarded': strangers },
    { 'x-gateway-forwarded': `edge ${at} ${mac}` },
    { 'x-gateway-forwarded': `edge ${Number(at) - 3600} ${'A'.repeat(43)}` },
  ];
  for (const headers of attempts) {
    const answer = await fetch(owner.url + INTERNAL_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    assert.equal(answer.status, 404, JSON.stringify(headers));
    assert.equal(((await answer.json()) as { error: string }).error, 'not_found');
  }
  // A valid signature of another body does not carry over to this one.
  const signed = await startOwner();
  await forwarder(signed.url).toOwner(context('POST', '/w', {}, '{}').ctx, { kind: 'test', user_id: 'user-2' });
  const tampered = await fetch(owner.url + INTERNAL_PATH, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-gateway-forwarded': String(signed.requests[0]!.headers['x-gateway-forwarded']),
    },
    body,
  });
  assert.equal(tampered.status, 404);
  assert.deepEqual(owner.ran, []);
});

test('a write whose kept-alive connection the owner drops is outcome_unknown, and is not sent again', async () => {
  const owner = await startOwner((request, response, index) => {
    if (index === 1) return void request.socket.destroy();
    response.end('{}');
  });
  const forward = forwarder(owner.url);
  assert.equal(await forward.toOwner(context('POST', '/w', {}, '{}').ctx, { kind: 'test', user_id: 'user-1' }), true);
  const error = await forward
    .toOwner(context('POST', '/w', {}, '{}').ctx, { kind: 'test', user_id: 'user-1' })
    .catch((e: unknown) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.code, 'outcome_unknown');
  assert.equal(owner.requests.length, 2);
  forward.close();
});

test('a read whose kept-alive connection the owner drops is answered on a new one', async () => {
  const owner = await startOwner((request, response, index) => {
    if (index === 1) return void request.socket.destroy();
    response.end('{}');
  });
  const forward = forwarder(owner.url);
  assert.equal(await forward.toOwner(context('GET', '/r').ctx, { kind: 'test', user_id: 'user-1' }), true);
  const { ctx } = context('GET', '/r');
  assert.equal(await forward.toOwner(ctx, { kind: 'test', user_id: 'user-1' }), true);
  assert.equal(ctx.status, 200);
  assert.deepEqual(
    owner.requests.map((request) => request.connection),
    [0, 0, 1],
  );
  forward.close();
});

test('an owner that does not answer: a write is outcome_unknown at the timeout, a read 503 shard_unavailable', async () => {
  const owner = await startOwner(() => undefined);
  const forward = forwarder(owner.url, { timeout_ms: scaled(300) });
  const write = await forward
    .toOwner(context('POST', '/w', {}, '{}').ctx, { kind: 'test', user_id: 'user-1' })
    .catch((e: unknown) => e);
  assert.ok(write instanceof ApiError);
  assert.equal(write.code, 'outcome_unknown');
  const read = await forward
    .toOwner(context('GET', '/r').ctx, { kind: 'test', user_id: 'user-1' })
    .catch((e: unknown) => e);
  assert.ok(read instanceof ApiError);
  assert.equal(read.code, 'shard_unavailable');
  forward.close();
});

test('an owner that refuses the connection: even a write looks for the owner again (nothing was sent)', async () => {
  const owner = await startOwner();
  owner.close();
  const forward = forwarder(owner.url);
  const error = await forward
    .toOwner(context('POST', '/w', {}, '{}').ctx, { kind: 'test', user_id: 'user-1' })
    .catch((e: unknown) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.code, 'shard_unavailable');
  forward.close();
});

test('close ends the connections to the owners at once, not when they would idle out', async () => {
  const owner = await startOwner();
  const forward = forwarder(owner.url);
  await forward.toOwner(context('GET', '/r').ctx, { kind: 'test', user_id: 'user-1' });
  assert.equal(owner.connections[0]!.destroyed, false);
  forward.close();
  assert.ok(scaled(500) < FORWARD_HOP.idle_ms);
  await eventually(() => (owner.connections[0]!.destroyed ? true : undefined), 500);
});
