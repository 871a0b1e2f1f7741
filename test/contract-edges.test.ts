// The edges of the contract that need a gateway of their own: what it answers while it starts, what
// /health says of the bank, and what a client too slow with its headers or its body gets. Each test
// starts and closes its own gateway, one at a time: two live gateways on one database would fence
// each other's shards.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { createSql } from '../persistence/sql.ts';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY, client, startTestGateway } from './support/gateway.ts';

function assertErrorShape(body: any, code: string): void {
  assert.equal(body.error, code);
  assert.equal(typeof body.message, 'string');
  assert.equal(typeof body.request_id, 'string');
}

async function withGateway(overrides: Record<string, string>, run: (gateway: Gateway) => Promise<void>) {
  const gateway = await startTestGateway(overrides);
  try {
    await run(gateway);
  } finally {
    await gateway.close();
  }
}

/** A port where nothing listens: bound once by this process, then released. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A pino destination that resolves `seen` with the first line `match` accepts. */
function watchLog(match: (line: Record<string, unknown>) => boolean) {
  let resolveSeen!: (line: Record<string, unknown>) => void;
  const seen = new Promise<Record<string, unknown>>((resolve) => (resolveSeen = resolve));
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const text of lines.filter(Boolean)) {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (match(line)) resolveSeen(line);
      }
      done();
    },
  });
  return { stream, seen };
}

/**
 * Sends `head`, then `trickle` one byte every `every_ms` until the server answers, and resolves with
 * the whole answer once the server closes the connection.
 */
function slowClient(port: number, head: string, trickle: string, every_ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent < trickle.length) socket.write(trickle[sent++]!);
      }, every_ms);
    });
    socket.on('data', (chunk) => {
      clearInterval(timer);
      answer += chunk.toString();
    });
    socket.on('close', () => {
      clearInterval(timer);
      resolve(answer);
    });
    // A write racing the server's close may fail; what the server answered is what counts.
    socket.on('error', (error) => (answer ? undefined : reject(error)));
  });
}

function parseAnswer(answer: string): { status: number; headers: Map<string, string>; body: any } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = new Map(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) };
}

test('while starting: 503 service_starting in the contract shape, with Retry-After and a request id', async () => {
  // The shard takeover at start waits on the lease rows, which this transaction locks: the gateway is
  // listening (the in-process bank needs its address) but not started until it lets go, or for 2 s.
  const locker = createSql(await testDatabaseUrl(), { pool_max: 1, application_name: 'contract-edges-lock' });
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holding = locker.begin(async (tx) => {
    await tx`LOCK TABLE shard_leases IN ACCESS EXCLUSIVE MODE`;
    locked();
    await released;
  });
  await isLocked;
  const log = watchLog((line) => typeof line.msg === 'string' && line.msg.startsWith('gateway accepting connections'));
  const starting = startTestGateway({ LOG_LEVEL: 'info' }, log.stream);
  try {
    const { port } = (await Promise.race([
      log.seen,
      starting.then(() => assert.fail('the gateway started without saying that it accepts connections')),
    ])) as { port: number };
    const request = client(`http://127.0.0.1:${port}`);

    const kept = await request('GET', '/health', { headers: { 'x-request-id': 'client-id-starting' } });
    assert.equal(kept.status, 503);
    assert.equal(kept.headers.get('retry-after'), '1');
    assert.match(kept.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(kept.headers.get('x-request-id'), 'client-id-starting');
    assertErrorShape(kept.json, 'service_starting');
    assert.equal(kept.json.request_id, 'client-id-starting');

    const fresh = await request('POST', '/api/v1/deposits', {
      key: ADMIN_KEY,
      body: { amount: 1, currency: 'USD' },
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    assert.equal(fresh.status, 503);
    assertErrorShape(fresh.json, 'service_starting');
    assert.match(fresh.json.request_id, /^[0-9a-f-]{36}$/);
    assert.equal(fresh.headers.get('x-request-id'), fresh.json.request_id);
  } finally {
    release();
    await holding;
    await locker.end();
    await (await starting).close();
  }
});

test('/health with the in-process bank: bank ok, status ok', async () => {
  await withGateway({}, async (gateway) => {
    const answer = await client(gateway.url)('GET', '/health');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json, { status: 'ok', checks: { postgres: 'ok', redis: 'ok', bank: 'ok' } });
  });
});

test('/health with BANK_URL at a closed port: 200 degraded, bank unavailable (payments wait, deposits go on)', async () => {
  await withGateway(
    { BANK_URL: `http://127.0.0.1:${await closedPort()}`, HEALTH_TIMEOUT_MS: '500' },
    async (gateway) => {
      const request = client(gateway.url);
      const answer = await request('GET', '/health');
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.json, {
        status: 'degraded',
        checks: { postgres: 'ok', redis: 'ok', bank: 'unavailable' },
      });
      const user = await request('POST', '/api/v1/users', {
        key: ADMIN_KEY,
        body: { name: 'Waits', email: `waits-${crypto.randomUUID()}@example.test` },
        idempotencyKey: crypto.randomUUID(),
      });
      const deposit = await request('POST', '/api/v1/deposits', {
        key: user.json.api_key,
        body: { amount: 100, currency: 'USD' },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(deposit.status, 202, 'a deposit is still taken while the bank is down');
    },
  );
});

test('/health when the bank answers but the circuit breaker is open: 200 degraded, bank circuit_open', async () => {
  await withGateway({ BANK_UNAVAILABLE_RATE: '1' }, async (gateway) => {
    // Every transfer gets 503, which opens the breaker within a few calls; the bank's own /health answers.
    for (let calls = 1; gateway.bank.state() !== 'open'; calls += 1) {
      assert.ok(calls <= 10, 'the breaker opens within 10 failed calls');
      const outcome = await gateway.bank.submit({
        id: crypto.randomUUID(),
        type: 'deposit',
        amount: 100n,
        currency: 'USD',
        user_id: crypto.randomUUID(),
      });
      assert.equal(outcome.kind, 'transient');
    }
    const answer = await client(gateway.url)('GET', '/health');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json, {
      status: 'degraded',
      checks: { postgres: 'ok', redis: 'ok', bank: 'circuit_open' },
    });
  });
});

test('/health is 503 when Postgres fails, naming the bank too when it fails as well', async () => {
  await withGateway(
    {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      BANK_URL: `http://127.0.0.1:${await closedPort()}`,
      HEALTH_TIMEOUT_MS: '500',
    },
    async (gateway) => {
      const answer = await client(gateway.url)('GET', '/health');
      assert.equal(answer.status, 503);
      assert.equal(answer.json.status, 'unavailable');
      assert.deepEqual(answer.json.checks, { postgres: 'unavailable', redis: 'ok', bank: 'unavailable' });
      assertErrorShape(answer.json, 'service_unavailable');
      assert.match(answer.json.message, /postgres, bank/);
    },
  );
});

test('a client too slow with its headers or its body gets 408 request_timeout in the contract shape', async () => {
  await withGateway({ HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600' }, async (gateway) => {
    const port = Number(new URL(gateway.url).port);

    const started = Date.now();
    const headers = parseAnswer(
      await slowClient(port, 'GET /health HTTP/1.1\r\nHost: x\r\n', 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 50),
    );
    assert.equal(headers.status, 408);
    assertErrorShape(headers.body, 'request_timeout');
    assert.match(headers.body.request_id, /^[0-9a-f-]{36}$/);
    assert.equal(headers.headers.get('x-request-id'), headers.body.request_id);
    assert.equal(headers.headers.get('connection'), 'close');
    assert.ok(Date.now() - started >= 300, 'not before the headers timeout');

    // The headers come at once, so Koa takes the request (and names it); its body never finishes.
    const body = parseAnswer(
      await slowClient(
        port,
        'POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n' +
          `Authorization: Bearer ${ADMIN_KEY}\r\nIdempotency-Key: slow-body\r\nX-Request-ID: slow-body-12345\r\n\r\n`,
        '{"name": "Slow", "email": "slow@example.test"}                  ',
        50,
      ),
    );
    assert.equal(body.status, 408);
    assertErrorShape(body.body, 'request_timeout');
    assert.equal(body.body.request_id, 'slow-body-12345', 'the id Koa gave the request');
    assert.equal(body.headers.get('x-request-id'), 'slow-body-12345');

    const users = await gateway.sql`SELECT 1 FROM users WHERE email = 'slow@example.test'`;
    assert.equal(users.length, 0, 'nothing was created');
    assert.equal((await client(gateway.url)('GET', '/health')).status, 200, 'the server still answers');
  });
});
