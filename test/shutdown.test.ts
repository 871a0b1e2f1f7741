import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { shardOf } from '../engine/shards.ts';
import { createSql } from '../persistence/sql.ts';
import { testDatabaseUrl } from './support/database.ts';
import { appendWaiting, holdShard } from './support/shard-lock.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { freePort } from './support/process.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { elapse, eventually, scaled } from './support/time.ts';

test('SIGTERM stops accepting, lets the request in flight finish, and exits 0', async () => {
  const port = await freePort();
  const prefix = testKeyPrefix('sigterm');
  const child = spawn('node', ['--import', 'tsx', 'main.ts'], {
    env: {
      ...process.env,
      DATABASE_URL: await testDatabaseUrl(),
      REDIS_KEY_PREFIX: prefix,
      REPL_SOCKET: join(tmpdir(), `pgw-test-${crypto.randomUUID()}.sock`),
      PORT: String(port),
      HOST: '127.0.0.1',
      ADMIN_API_KEY: ADMIN_KEY,
      LOG_LEVEL: 'info',
      DASHBOARD_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  while (!output.includes('gateway listening')) await once(child.stdout, 'data');

  const body = JSON.stringify({ name: 'Slow', email: `slow-${crypto.randomUUID()}@example.test` });
  const slow = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/api/v1/users',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'idempotency-key': crypto.randomUUID(),
    },
  });
  const answered = once(slow, 'response');
  slow.write(body.slice(0, 10));
  await once(slow, 'socket');
  // The gateway reading the headers is not visible from here: a moment, so that the request is in flight.
  await elapse(scaled(100));
  child.kill('SIGTERM');
  while (!output.includes('shutting down')) await once(child.stdout, 'data');
  slow.end(body.slice(10));
  const [response] = (await answered) as [import('node:http').IncomingMessage];
  assert.equal(response.statusCode, 201);
  response.resume();

  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 0);
  assert.match(output, /shutting down/);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
  await dropKeys(prefix);
});

// The machine is shared: every limit below is a generous multiple of what an idle machine needs.
/** On a quiet machine; `eventually` scales it. */
const WAIT_MS = 10_000;
// close() must end long before the timeout that would cut its connections: it may not simply wait it out.
const SHUTDOWN_TIMEOUT_MS = 120_000;
const CLOSE_MS_MAX = Math.min(scaled(10_000), SHUTDOWN_TIMEOUT_MS / 2);
const ASK_TIMEOUT_MS = Math.min(scaled(30_000), 60_000);
const LOOP_REQUESTS_MAX = 50_000;

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  socket: Socket;
}

/** One request through `agent`; rejects with the socket's error (its `code`: ECONNREFUSED, ECONNRESET). */
function send(
  agent: Agent,
  url: string,
  path: string,
  options: { key: string; body?: unknown; idempotencyKey?: string },
): Promise<Reply> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const request = httpRequest(url + path, {
      agent,
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${options.key}`,
        ...(body === undefined
          ? {}
          : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        ...(options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : {}),
      },
    });
    request.on('error', reject);
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({ status: response.statusCode!, headers: response.headers, body: text, socket: response.socket }),
      );
    });
    request.end(body);
  });
}

type LoopOutcome = { sent_after_close: boolean } & ({ reply: Reply } | { code: string });

/**
 * A keep-alive client asking again and again, one request at a time on the agent's one connection,
 * until stopped or refused a connection. The test can park it between two requests.
 */
function startLoop(ask: () => Promise<Reply>, closeBegan: () => boolean) {
  const outcomes: LoopOutcome[] = [];
  let stopped = false;
  let gate: Promise<void> | undefined;
  let open = () => {};
  let parked = () => {};
  const done = (async () => {
    while (!stopped && outcomes.length < LOOP_REQUESTS_MAX) {
      if (gate) {
        parked();
        await gate;
        continue;
      }
      const sent_after_close = closeBegan();
      try {
        outcomes.push({ sent_after_close, reply: await ask() });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? String(error);
        outcomes.push({ sent_after_close, code });
        if (code === 'ECONNREFUSED') return;
      }
    }
  })();
  const resume = () => {
    gate = undefined;
    open();
  };
  return {
    outcomes,
    /** Resolves once the loop waits between two requests, its last one answered. */
    pause: () =>
      new Promise<void>((resolve) => {
        gate = new Promise<void>((release) => (open = release));
        parked = resolve;
      }),
    resume,
    stop: () => {
      stopped = true;
      resume();
      return done;
    },
  };
}

/** Reads one HTTP/1.1 answer (head and Content-Length body) off a raw socket. */
async function readAnswer(socket: Socket): Promise<{ head: string; body: string }> {
  let text = '';
  for await (const chunk of socket) {
    text += String(chunk);
    const end = text.indexOf('\r\n\r\n');
    if (end === -1) continue;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
    if (Buffer.byteLength(text.slice(end + 4)) >= length)
      return { head: text.slice(0, end), body: text.slice(end + 4) };
  }
  throw new Error(`the connection ended before a whole answer: ${JSON.stringify(text)}`);
}

test('close() answers the work in flight, refuses new work, closes keep-alive connections, and ends at once', async () => {
  const gateway = await startTestGateway({
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    ACTOR_ASK_TIMEOUT_MS: String(ASK_TIMEOUT_MS),
    REQUEST_DEADLINE_MS: String(ASK_TIMEOUT_MS + 10_000),
    HTTP_HEADERS_TIMEOUT_MS: String(ASK_TIMEOUT_MS),
    HTTP_REQUEST_TIMEOUT_MS: String(ASK_TIMEOUT_MS + 10_000),
  });
  const sql = createSql(await testDatabaseUrl(), { pool_max: 2, application_name: 'shutdown-test' });
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  const depositor = new Agent({ keepAlive: true, maxSockets: 1 });
  const late = connect(Number(new URL(gateway.url).port), '127.0.0.1');
  late.on('error', () => undefined);
  await once(late, 'connect');
  let closeBegan = false;
  let release: (() => Promise<void>) | undefined;
  let closed: Promise<void> | undefined;
  const user = await createUser(client(gateway.url), 'Draining');
  const loop = startLoop(
    () => send(keepAlive, gateway.url, `/api/v1/users/${user.id}/balance`, { key: user.api_key }),
    () => closeBegan,
  );
  try {
    await eventually(() => (loop.outcomes.length >= 3 ? true : undefined), WAIT_MS);
    // A request whose head is still arriving when close() begins: it keeps its connection open.
    late.write(`GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${user.api_key}\r\n`);

    // A deposit waits in its journal append behind the held lease row; the loop's next balance
    // read waits behind it in the account's mailbox. Both are in flight when close() begins.
    await loop.pause();
    release = await holdShard(sql, shardOf(user.id, gateway.shards.shards));
    const deposit = send(depositor, gateway.url, '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 500, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    });
    await appendWaiting(sql, WAIT_MS);
    loop.resume();
    await eventually(() => (gateway.accounts.mailboxDepth() === 1 ? true : undefined), WAIT_MS);

    closeBegan = true;
    const started = Date.now();
    closed = gateway.close();
    // Once the listener is closed, a new connection is refused rather than raced against close().
    await eventually(() => (gateway.server.listening ? undefined : true), WAIT_MS);
    late.write('\r\n');
    const refused = await readAnswer(late);
    await release();
    release = undefined;
    const answered = await deposit;
    const within = await Promise.race([
      closed.then(() => true),
      new Promise<false>((resolve) => setTimeout(resolve, CLOSE_MS_MAX, false).unref()),
    ]);
    const close_ms = Date.now() - started;
    await loop.stop();

    assert.equal(answered.status, 202, answered.body);
    assert.equal(answered.headers.connection, 'close');
    assert.match(refused.head, /^HTTP\/1\.1 503 /);
    assert.match(refused.head, /\r\nconnection: close/i);
    assert.match(refused.head, /\r\nretry-after: \d+/i);
    assert.equal(JSON.parse(refused.body).error, 'shutting_down');

    const before = loop.outcomes.filter((outcome) => !outcome.sent_after_close);
    const replies = before.flatMap((outcome) => ('reply' in outcome ? [outcome.reply] : []));
    assert.equal(replies.length, before.length, 'no request sent before close() failed');
    assert.ok(
      replies.every((reply) => reply.status === 200),
      replies.map((reply) => reply.status).join(),
    );
    assert.ok(
      replies.slice(0, 3).every((reply) => reply.socket === replies[0]!.socket),
      'the loop kept its connection',
    );
    assert.equal(replies.at(-1)!.headers.connection, 'close', 'the answer in flight closed its connection');
    const after = loop.outcomes.filter((outcome) => outcome.sent_after_close);
    assert.ok(after.length > 0, 'the loop asked again after close() began');
    for (const outcome of after) {
      if ('code' in outcome) assert.equal(outcome.code, 'ECONNREFUSED', 'only a new connection may fail');
      else {
        assert.equal(outcome.reply.status, 503, outcome.reply.body);
        assert.equal(JSON.parse(outcome.reply.body).error, 'shutting_down');
        assert.equal(outcome.reply.headers.connection, 'close');
      }
    }
    assert.ok(within, `close() did not end within ${CLOSE_MS_MAX} ms (SHUTDOWN_TIMEOUT_MS is ${SHUTDOWN_TIMEOUT_MS})`);
    assert.ok(close_ms < CLOSE_MS_MAX, `close took ${close_ms} ms`);
  } finally {
    await loop.stop();
    if (release) await release();
    keepAlive.destroy();
    depositor.destroy();
    late.destroy();
    // Without the clients' connections, a close() that has not ended yet ends now.
    gateway.server.closeAllConnections();
    await (closed ?? gateway.close());
    await sql.end();
  }
});
