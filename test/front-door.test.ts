import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { shardOf } from '../engine/shards.ts';
import { namedShard, registryTable, startFrontDoor, type FrontDoor, type FrontDoorStats } from '../front-door.ts';
import { createLogger } from '../logger.ts';
import { createInstanceRegistry } from '../persistence/instances.ts';
import { createRedis } from '../persistence/redis.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { WebSocket } from 'ws';
import { startTestBank } from './support/bank.ts';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY, client, createUser } from './support/gateway.ts';
import { freePort, kill9, spawnGateway } from './support/process.ts';
import { dropKeys, REDIS_URL, testKeyPrefix } from './support/redis.ts';
import { elapse, eventually, scaled } from './support/time.ts';

// The shard-aware front door (front-door.ts) in this process, in front of three gateways in child
// processes on one database and one Redis namespace: requests reach their account's owner without
// being forwarded, a key's first request teaches the front door its shard, and when an owner is killed
// the requests still succeed (another gateway, which forwards, until the table has caught up).

const SHARDS = 16;
const LEASE_MS = scaled(2000);
const USERS = 30;

test('the account a request names: the path, then X-Account-Id, else none', () => {
  const id = '0190a0a0-0000-7000-8000-000000000001';
  assert.deepEqual(namedShard(`/api/v1/users/${id}/balance`, {}, SHARDS), { shard: shardOf(id, SHARDS), from: 'path' });
  assert.deepEqual(namedShard('/api/v1/deposits', { 'x-account-id': id }, SHARDS), {
    shard: shardOf(id, SHARDS),
    from: 'header',
  });
  assert.equal(namedShard('/api/v1/deposits', {}, SHARDS), undefined);
  assert.equal(namedShard('/api/v1/users', {}, SHARDS), undefined);
  assert.equal(namedShard('/api/v1/users/%E0%A4%A/balance', {}, SHARDS), undefined);
});

/** The status and body a WebSocket handshake through `url` is answered with, when it is not upgraded. */
function refusedHandshake(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/api/v1/ws`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.on('error', reject);
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body }));
    });
    req.end();
  });
}

test('a WebSocket handshake a gateway refuses comes back as it was answered; with no gateway, 502', async () => {
  const refusing = createServer((_req, res) =>
    res.writeHead(403, { 'content-type': 'application/json' }).end('{"no":1}'),
  );
  refusing.listen(0, '127.0.0.1');
  await once(refusing, 'listening');
  const door = (upstreams: string[]) =>
    startFrontDoor({
      host: '127.0.0.1',
      port: 0,
      upstreams,
      shards: SHARDS,
      mode: 'shard',
      readTable: () => Promise.resolve({ owners: [], instances: [] }),
      refresh_ms: 60_000,
      timeout_ms: scaled(10_000),
      body_max_bytes: 1024,
      keys_max: 10,
      log: createLogger('silent'),
    });
  const [toRefusing, toNobody] = await Promise.all([
    door([`http://127.0.0.1:${(refusing.address() as AddressInfo).port}`]),
    door([]),
  ]);
  try {
    assert.deepEqual(await refusedHandshake(toRefusing.url), { status: 403, body: '{"no":1}' });
    const nobody = await refusedHandshake(toNobody.url);
    assert.equal(nobody.status, 502);
    assert.equal((JSON.parse(nobody.body) as { error: string }).error, 'bad_gateway');
  } finally {
    await Promise.all([toRefusing.close(), toNobody.close()]);
    refusing.close();
  }
});

test('a gateway that takes the connection and never answers the handshake gets the client a 504, not a hang', async () => {
  // A frozen gateway: the kernel accepts, nothing ever answers.
  const held: Socket[] = [];
  const frozen = createNetServer((socket) => void held.push(socket));
  frozen.listen(0, '127.0.0.1');
  await once(frozen, 'listening');
  const door = await startFrontDoor({
    host: '127.0.0.1',
    port: 0,
    upstreams: [`http://127.0.0.1:${(frozen.address() as AddressInfo).port}`],
    shards: SHARDS,
    mode: 'shard',
    readTable: () => Promise.resolve({ owners: [], instances: [] }),
    refresh_ms: 60_000,
    timeout_ms: scaled(500),
    body_max_bytes: 1024,
    keys_max: 10,
    log: createLogger('silent'),
  });
  try {
    const answer = await refusedHandshake(door.url);
    assert.equal(answer.status, 504);
    assert.equal((JSON.parse(answer.body) as { error: string }).error, 'gateway_timeout');
  } finally {
    await door.close();
    for (const socket of held) socket.destroy();
    frozen.close();
  }
});

interface Instance {
  id: string;
  url: string;
  child: ChildProcess;
  output: () => string;
}

describe('the front door in front of three gateways', () => {
  let sql: Sql;
  let prefix: string;
  let instances: Instance[] = [];
  let bank: { close(): Promise<void> };
  let frontDoor: FrontDoor;
  let request: ReturnType<typeof client>;
  const redis = createRedis(REDIS_URL, 'front-door-test');
  const subscriber = createRedis(REDIS_URL, 'front-door-test-subscriber');
  const users: { id: string; api_key: string }[] = [];

  const live = () => instances.filter((i) => i.child.exitCode === null && i.child.signalCode === null);

  async function owners(): Promise<(string | null)[]> {
    const answer = await client(live()[0]!.url)('GET', '/api/v1/admin/shards', { key: ADMIN_KEY });
    assert.equal(answer.status, 200, answer.text);
    return (answer.json as { shards: { owner: string | null }[] }).shards.map((row) => row.owner);
  }

  async function settled(ids: string[]): Promise<(string | null)[]> {
    return eventually(async () => {
      const table = await owners().catch(() => undefined);
      if (!table) return undefined;
      const complete =
        table.every((owner) => owner !== null && ids.includes(owner)) && ids.every((id) => table.includes(id));
      return complete ? table : undefined;
    }, scaled(20_000));
  }

  /**
   * Access log lines of the deposits and balance routes, on every instance (a forwarded request is
   * logged twice: on its route where it arrived, and as the signed command the owner ran).
   */
  const routeLines = () =>
    instances
      .flatMap((i) => i.output().split('\n'))
      .filter(
        (line) =>
          line.includes('"msg":"request"') &&
          /"path":"(\/api\/v1\/deposits|\/api\/v1\/users\/[^/"]+\/balance|\/internal\/v1\/commands)"/.test(line),
      ).length;

  /** Waits until the access logs hold `expected` more lines of the routes than at `from` (they are written after the answer). */
  async function linesReach(from: number, expected: number): Promise<void> {
    const deadline = Date.now() + scaled(3000);
    while (routeLines() - from < expected && Date.now() < deadline) await elapse(50);
    assert.equal(routeLines() - from, expected, 'access log lines of the routes, all instances');
  }

  function delta(after: FrontDoorStats, before: FrontDoorStats) {
    return {
      to_owner: after.to_owner - before.to_owner,
      round_robin: after.round_robin - before.round_robin,
      locally: after.answered_locally - before.answered_locally,
      forwarded: after.answered_forwarded - before.answered_forwarded,
      retried: after.retried - before.retried,
      failed: after.failed - before.failed,
    };
  }

  /** A deposit under one Idempotency-Key, sent again (same key) on a 503 as a client would; the 202's id. */
  async function deposit(user: { api_key: string }): Promise<string> {
    const key = crypto.randomUUID();
    const deadline = Date.now() + scaled(20_000);
    for (;;) {
      const answer = await request('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount: 100, currency: 'USD' },
        idempotencyKey: key,
      });
      if (answer.status === 202) return answer.json.id as string;
      assert.equal(answer.status, 503, answer.text);
      assert.ok(Date.now() < deadline, `deposit not accepted in time: ${answer.text}`);
      await elapse(100);
    }
  }

  async function balance(user: { id: string; api_key: string }): Promise<void> {
    const deadline = Date.now() + scaled(20_000);
    for (;;) {
      const answer = await request('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
      if (answer.status === 200) return;
      assert.equal(answer.status, 503, answer.text);
      assert.ok(Date.now() < deadline, `balance not answered in time: ${answer.text}`);
      await elapse(100);
    }
  }

  /** A deposit then a balance read for every user, eight users at a time. */
  async function round(): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < users.length; i += 8) {
      await Promise.all(
        users.slice(i, i + 8).map(async (user) => {
          ids.push(await deposit(user));
          await balance(user);
        }),
      );
    }
    return ids;
  }

  before(async () => {
    const url = await testDatabaseUrl();
    sql = createSql(url, { pool_max: 2, application_name: 'front-door-test' });
    prefix = testKeyPrefix('front-door');
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const [doorPort, bankPort] = [ports[3], ports[4]];
    // A bank that answers after the test: its callbacks (through the front door, round robin, as they
    // name no account it can tell) would be counted with the requests under test.
    bank = await startTestBank(bankPort, `http://127.0.0.1:${doorPort}/webhooks/bank-callback`, {
      BANK_MIN_DELAY_MS: '600000',
      BANK_MAX_DELAY_MS: '600000',
    });
    const env = {
      DATABASE_URL: url,
      REDIS_KEY_PREFIX: prefix,
      SHARDS: String(SHARDS),
      SHARD_LEASE_MS: String(LEASE_MS),
      SHARD_WAIT_MS: String(scaled(3000)),
      SHUTDOWN_TIMEOUT_MS: String(scaled(3000)),
      BANK_URL: `http://127.0.0.1:${bankPort}`,
      BANK_BACKOFF_BASE_MS: '20',
      LOG_LEVEL: 'info',
    };
    instances = await Promise.all(
      ['a', 'b', 'c'].map(async (id, i) => ({
        id,
        ...(await spawnGateway({ ...env, INSTANCE_ID: id, PORT: String(ports[i]!) })),
      })),
    );
    await settled(['a', 'b', 'c']);
    const registry = createInstanceRegistry(redis, subscriber, prefix);
    frontDoor = await startFrontDoor({
      host: '127.0.0.1',
      port: doorPort,
      upstreams: instances.map((i) => i.url),
      shards: SHARDS,
      mode: 'shard',
      readTable: registryTable(registry, SHARDS),
      onChange: (listener) => registry.onAnnounced(listener, () => {}),
      refresh_ms: 200,
      timeout_ms: scaled(10_000),
      body_max_bytes: 1024 * 1024,
      keys_max: 1000,
      log: createLogger('silent'),
    });
    request = client(frontDoor.url);
    for (let i = 0; i < USERS; i += 1) users.push(await createUser(request, `Door ${i}`));
  });

  after(async () => {
    await frontDoor?.close();
    await Promise.all(instances.map((i) => kill9(i.child)));
    await bank?.close();
    await sql?.end();
    redis.disconnect();
    subscriber.disconnect();
    await dropKeys(prefix);
  });

  test('a key is learned on its first request; then every request reaches its owner, none is forwarded', async () => {
    await frontDoor.refresh();
    const [stats0, lines0] = [frontDoor.stats(), routeLines()];
    await round();
    const first = delta(frontDoor.stats(), stats0);
    assert.equal(frontDoor.stats().keys_learned, USERS, 'one key learned per user');
    // The deposits came with a key the front door did not know yet: round robin, so most were forwarded;
    // the balance reads name the user in their path: straight to the owner.
    assert.equal(first.to_owner, USERS);
    assert.equal(first.round_robin, USERS);
    assert.equal(first.locally + first.forwarded, 2 * USERS, 'every answer says where it was answered');
    assert.ok(first.forwarded > 0, 'some first deposits were forwarded');
    // The gateways' own count agrees: a forwarded request is logged by both instances.
    await linesReach(lines0, 2 * USERS + first.forwarded);

    const [stats1, lines1] = [frontDoor.stats(), routeLines()];
    await round();
    const second = delta(frontDoor.stats(), stats1);
    assert.deepEqual(second, {
      to_owner: 2 * USERS,
      round_robin: 0,
      locally: 2 * USERS,
      forwarded: 0,
      retried: 0,
      failed: 0,
    });
    await linesReach(lines1, 2 * USERS);
    await elapse(200);
    assert.equal(routeLines() - lines1, 2 * USERS, 'no request was logged twice (none forwarded)');
  });

  test("a WebSocket is tunnelled to a gateway and carries its key's changes", async () => {
    const user = users[0]!;
    const socket = new WebSocket(`${frontDoor.url.replace(/^http/, 'ws')}/api/v1/ws`);
    const messages: { type: string; data?: { id: string } }[] = [];
    socket.on('message', (data) =>
      messages.push(JSON.parse((data as Buffer).toString('utf8')) as (typeof messages)[0]),
    );
    socket.on('error', () => {});
    await once(socket, 'open');
    // As a browser would: the key in the first message, through the tunnel.
    socket.send(JSON.stringify({ type: 'auth', key: user.api_key }));
    await eventually(() => (messages[0]?.type === 'subscribed' ? true : undefined));
    const id = await deposit(user);
    await eventually(() => (messages.some((m) => m.type === 'transaction' && m.data?.id === id) ? true : undefined));
    const closed = once(socket, 'close');
    socket.close();
    await closed;
  });

  test('an owner killed: requests still succeed, through another gateway, then straight to the new owners', async () => {
    const table = await owners();
    const counts = new Map<string, number>();
    for (const user of users) {
      const owner = table[shardOf(user.id, SHARDS)]!;
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    const victim = [...counts].sort((x, y) => y[1] - x[1])[0]![0];
    const dead = instances.find((i) => i.id === victim)!;
    await kill9(dead.child);

    // At once: the front door's table still names the dead owner, whose leases have not expired yet.
    const stats0 = frontDoor.stats();
    const accepted = await round();
    const during = delta(frontDoor.stats(), stats0);
    assert.equal(during.failed, 0, 'the front door answered every request');
    assert.ok(during.retried > 0, 'requests for the dead owner went to another gateway');

    const survivors = live().map((i) => i.id);
    await settled(survivors);
    await frontDoor.refresh();
    const stats1 = frontDoor.stats();
    accepted.push(...(await round()));
    const afterwards = delta(frontDoor.stats(), stats1);
    assert.deepEqual(afterwards, {
      to_owner: 2 * USERS,
      round_robin: 0,
      locally: 2 * USERS,
      forwarded: 0,
      retried: 0,
      failed: 0,
    });

    // Every 202 is one transaction in Postgres, under its id.
    const rows = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM transactions WHERE id IN ${sql(accepted)}`;
    assert.equal(rows[0]!.n, accepted.length);
  });
});
