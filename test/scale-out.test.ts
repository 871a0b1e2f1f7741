import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { shardOf } from '../engine/shards.ts';
import { startTestBank } from './support/bank.ts';
import { testDatabaseUrl } from './support/database.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { ADMIN_KEY, client, createUser } from './support/gateway.ts';
import { freePort, kill9, spawnGateway } from './support/process.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { elapse, eventually, scaled } from './support/time.ts';

// Three gateways in child processes on loopback ports, sharing one Postgres database and one Redis
// namespace, with a bank of the test's own that calls back the first of them only: a callback for an
// account owned elsewhere has to be forwarded to be settled.

const SHARDS = 16;
// On the machine's time scale: an instance starved of CPU for two thirds of a lease loses its shards.
const LEASE_MS = scaled(2000);

interface Instance {
  id: string;
  port: number;
  url: string;
  child: ChildProcess;
  output: () => string;
}

interface ShardTable {
  instances: { id: string; actors: Record<string, number> }[];
  shards: { shard: number; owner: string | null; epoch: string; lease_expires_at: string | null }[];
}

interface Cluster {
  env: Record<string, string>;
  instances: Instance[];
  bank: { close(): Promise<void> };
  sql: Sql;
  start(id: string, port: number): Promise<Instance>;
  live(): Instance[];
  close(): Promise<void>;
}

async function startCluster(name: string): Promise<Cluster> {
  const url = await testDatabaseUrl();
  const sql = createSql(url, { pool_max: 2, application_name: `scale-out-test-${name}` });
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const bankPort = await freePort();
  const bank = await startTestBank(bankPort, `http://127.0.0.1:${ports[0]}/webhooks/bank-callback`, {
    BANK_MIN_DELAY_MS: '20',
    BANK_MAX_DELAY_MS: '80',
  });
  const env = {
    DATABASE_URL: url,
    REDIS_KEY_PREFIX: testKeyPrefix(`scale-${name}`),
    SHARDS: String(SHARDS),
    SHARD_LEASE_MS: String(LEASE_MS),
    SHARD_WAIT_MS: String(scaled(3000)),
    SHUTDOWN_TIMEOUT_MS: String(scaled(3000)),
    BANK_URL: `http://127.0.0.1:${bankPort}`,
    BANK_TIMEOUT_MS: String(scaled(1000)),
    BANK_BACKOFF_BASE_MS: '20',
    // Callbacks, not the status polls that replace a late one, settle the payments here (the mixed-traffic
    // test checks that callbacks reach the owners), also on a loaded machine.
    BANK_CALLBACK_DEADLINE_MS: String(scaled(10_000)),
    LOG_LEVEL: 'info',
  };
  const cluster: Cluster = {
    env,
    instances: [],
    bank,
    sql,
    async start(id, port) {
      const spawned = await spawnGateway({ ...env, INSTANCE_ID: id, PORT: String(port) });
      const instance = { id, port, ...spawned };
      cluster.instances = [...cluster.instances.filter((other) => other.id !== id), instance].sort((x, y) =>
        x.id.localeCompare(y.id),
      );
      return instance;
    },
    live: () =>
      cluster.instances.filter(
        (instance) => instance.child.exitCode === null && instance.child.signalCode === null && !instance.child.killed,
      ),
    async close() {
      await Promise.all(cluster.instances.map((instance) => kill9(instance.child)));
      await bank.close();
      await sql.end();
      await dropKeys(env.REDIS_KEY_PREFIX);
    },
  };
  await Promise.all(['a', 'b', 'c'].map((id, i) => cluster.start(id, ports[i]!)));
  return cluster;
}

async function shardTable(url: string): Promise<ShardTable> {
  const answer = await client(url)('GET', '/api/v1/admin/shards', { key: ADMIN_KEY });
  assert.equal(answer.status, 200, answer.text);
  return answer.json as ShardTable;
}

/** Waits until every shard is owned by one of `ids`, and each of them owns some. */
async function settledOwnership(url: string, ids: string[], timeout_ms = 15_000): Promise<ShardTable> {
  let last: ShardTable | undefined;
  let failure: unknown;
  return eventually(async () => {
    const table = await shardTable(url).catch((error: unknown) => void (failure = error));
    if (!table) return undefined;
    last = table;
    const owners = table.shards.map((row) => row.owner);
    const spread = ids.every((id) => owners.includes(id));
    return spread && owners.every((owner) => owner !== null && ids.includes(owner)) ? table : undefined;
  }, timeout_ms).catch((error: unknown) => {
    throw new Error(
      `owners never settled on ${ids.join(', ')}: ${JSON.stringify(last)} ${String(failure)} ${String((failure as { cause?: unknown } | undefined)?.cause)}`,
      { cause: error },
    );
  });
}

/** One client's intent: a deposit under one idempotency key, retried (same key) until it is answered. */
interface Intent {
  user: { id: string; api_key: string };
  key: string;
  amount: number;
  answers: { status: number; text: string; via: string }[];
}

async function send(cluster: Cluster, intent: Intent, via?: Instance, among?: Instance[]): Promise<number> {
  const target = via ?? pick(among ?? cluster.live());
  try {
    const answer = await client(target.url)('POST', '/api/v1/deposits', {
      key: intent.user.api_key,
      body: { amount: intent.amount, currency: 'USD' },
      idempotencyKey: intent.key,
    });
    intent.answers.push({ status: answer.status, text: answer.text, via: target.id });
    return answer.status;
  } catch {
    return 0; // the instance went away mid-request: the outcome is unknown; the key settles it
  }
}

/** Sends until a 202 (retrying 503s and lost connections with the same key), within `timeout_ms` (scaled). */
async function deliver(cluster: Cluster, intent: Intent, timeout_ms = 30_000, among?: Instance[]): Promise<void> {
  const deadline = Date.now() + scaled(timeout_ms);
  for (;;) {
    const status = await send(cluster, intent, undefined, among);
    if (status === 202) return;
    assert.ok(status === 0 || status === 503, `unexpected ${status}: ${intent.answers.at(-1)?.text}`);
    assert.ok(Date.now() < deadline, `deposit ${intent.key} not accepted in time`);
    // A client's pause before it retries, as Retry-After asks: the delay is the client's behaviour.
    await elapse(100);
  }
}

function pick<T>(items: T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

/** The books agree (journal, read model, live actors), every key made exactly one transaction, all settled. */
async function assertBooks(cluster: Cluster, intents: Intent[], users: { id: string }[]): Promise<void> {
  const url = cluster.live()[0]!.url;
  await eventually(async () => {
    const [row] = await cluster.sql<{ open: number }[]>`
      SELECT count(*)::int AS open FROM transactions
      WHERE status IN ('pending', 'processing') AND user_id IN ${cluster.sql(users.map((user) => user.id))}`;
    return row!.open === 0 ? true : undefined;
  }, 60_000);
  const rows = await cluster.sql<{ idempotency_key: string; n: number }[]>`
    SELECT i.key AS idempotency_key, count(DISTINCT t.id)::int AS n
    FROM idempotency_keys i JOIN transactions t ON t.id = (i.outcome #>> '{outcome,transaction,id}')::uuid
    WHERE i.key IN ${cluster.sql(intents.map((intent) => intent.key))}
    GROUP BY i.key`;
  const [count] = await cluster.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM transactions WHERE user_id IN ${cluster.sql(users.map((user) => user.id))}`;
  assert.equal(rows.length, intents.length, 'every key has its record');
  assert.ok(rows.every((row) => row.n === 1));
  assert.equal(count!.n, intents.length, 'exactly one transaction per idempotency key, nothing else');
  for (const intent of intents) {
    const accepted = intent.answers.filter((answer) => answer.status === 202);
    assert.ok(accepted.length > 0);
    assert.ok(
      accepted.every((answer) => answer.text === accepted[0]!.text),
      'every 202 for a key is the same answer',
    );
  }
  const [settled] = await cluster.sql<{ n: number; succeeded: number }[]>`
    SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded
    FROM transactions WHERE user_id IN ${cluster.sql(users.map((user) => user.id))}`;
  assert.equal(settled!.succeeded, settled!.n, 'every deposit settled (succeeded) once');
  const settlements = await cluster.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM journal
    WHERE type = 'transaction_succeeded' AND user_id IN ${cluster.sql(users.map((user) => user.id))}
    GROUP BY transaction_id HAVING count(*) > 1`;
  assert.equal(settlements.length, 0, 'no transaction settled twice');
  for (const user of users) {
    const expected = intents.filter((intent) => intent.user.id === user.id).reduce((sum, i) => sum + i.amount, 0);
    // A read may meet a bounded 503 while the cluster settles after a takeover: a client retries it.
    const balance = await eventually(async () => {
      const answer = await client(url)('GET', `/api/v1/users/${user.id}/balance`, { key: ADMIN_KEY });
      if (answer.status === 503) return undefined;
      return answer;
    });
    assert.equal(balance.status, 200, balance.text);
    assert.equal(balance.json.balances.find((b: { currency: string }) => b.currency === 'USD').available, expected);
  }
  const report = await client(url)('GET', '/api/v1/admin/reconciliation', { key: ADMIN_KEY });
  assert.equal(report.status, 200);
  assert.deepEqual(report.json.discrepancies, [], 'reconciliation is clean');
}

function intentsFor(users: { id: string; api_key: string }[], each: number, start = 1): Intent[] {
  return users.flatMap((user, u) =>
    Array.from({ length: each }, (_, i) => ({
      user,
      key: crypto.randomUUID(),
      amount: start + u * 1000 + i,
      answers: [],
    })),
  );
}

describe('three instances, one set of users', () => {
  let cluster: Cluster;
  let users: { id: string; api_key: string }[];
  const all: Intent[] = [];

  before(async () => {
    cluster = await startCluster('mixed');
    const table = await settledOwnership(cluster.instances[0]!.url, ['a', 'b', 'c']);
    assert.equal(table.shards.length, SHARDS);
    users = await Promise.all(
      Array.from({ length: 24 }, (_, i) => createUser(client(pick(cluster.instances).url), `Scale ${i}`)),
    );
  });
  after(() => cluster.close());

  test('the shard table: every shard owned once, leases spread over the three, epochs and expiry shown', async () => {
    const tables = await Promise.all(cluster.instances.map((instance) => shardTable(instance.url)));
    const owners = (table: ShardTable) => table.shards.map((row) => row.owner);
    assert.deepEqual(owners(tables[1]!), owners(tables[0]!), 'every instance sees the same owners');
    for (const id of ['a', 'b', 'c']) assert.ok(owners(tables[0]!).includes(id), `${id} owns shards`);
    for (const row of tables[0]!.shards) {
      assert.ok(BigInt(row.epoch) >= 1n);
      assert.ok(row.lease_expires_at && Date.parse(row.lease_expires_at) > Date.now() - LEASE_MS);
    }
    assert.deepEqual(tables[0]!.instances.map((instance) => instance.id).sort(), ['a', 'b', 'c']);
  });

  test('mixed traffic to all three: each deposit applied once, replays identical from any instance, callbacks forwarded', async () => {
    const intents = intentsFor(users, 5);
    all.push(...intents);
    // Every deposit goes to a random instance; then its key is replayed through each of the three. A 503
    // (a shard between owners, as a loaded machine can make a lease lapse) is retried as a client would.
    await Promise.all(intents.map((intent) => deliver(cluster, intent)));
    await Promise.all(
      intents.flatMap((intent) => cluster.instances.map((via) => deliver(cluster, intent, 30_000, [via]))),
    );
    for (const intent of intents) {
      const statuses = intent.answers.map((answer) => answer.status);
      assert.ok(
        statuses.every((status) => status === 202 || status === 503) &&
          cluster.instances.every((via) =>
            intent.answers.some((answer) => answer.via === via.id && answer.status === 202),
          ),
        `${intent.key}: ${intent.answers.map((answer) => `${answer.via} ${answer.status} ${answer.text}`).join('\n')}\n${cluster.instances
          .map((i) =>
            i
              .output()
              .split('\n')
              .filter((l) => /shards lost|round failed|shards acquired|forwarding failed/.test(l))
              .map((l) => i.id + ' ' + l)
              .join('\n'),
          )
          .join('\n')}`,
      );
    }
    // Balances asked of every instance agree once the bank's callbacks (all sent to a) are applied.
    const table = await shardTable(cluster.instances[0]!.url);
    const remote = users.filter((user) => table.shards[shardOf(user.id, SHARDS)]!.owner !== 'a');
    assert.ok(remote.length > 0, 'some accounts are owned by b or c, so their callbacks were forwarded');
    await assertBooks(cluster, all, users);
    // Every callback reached a; those of b's and c's accounts were applied by their owners.
    const appliedBy = (id: string) =>
      cluster.instances
        .find((i) => i.id === id)!
        .output()
        .match(/"msg":"callback applied"/g)?.length ?? 0;
    const owners = new Set(remote.map((user) => table.shards[shardOf(user.id, SHARDS)]!.owner!));
    assert.ok(
      [...owners].some((owner) => appliedBy(owner) > 0),
      `no callback applied on ${[...owners].join(' or ')}`,
    );
  });

  test('a live event stream on one instance shows the changes committed on another', async () => {
    const table = await shardTable(cluster.instances[0]!.url);
    const user = users[0]!;
    const owner = table.shards[shardOf(user.id, SHARDS)]!.owner!;
    const elsewhere = cluster.instances.find((instance) => instance.id !== owner)!;
    const controller = new AbortController();
    const stream = await fetch(`${elsewhere.url}/api/v1/events`, {
      headers: { authorization: `Bearer ${user.api_key}` },
      signal: controller.signal,
    });
    assert.equal(stream.status, 200);
    const intent: Intent = { user, key: crypto.randomUUID(), amount: 77, answers: [] };
    all.push(intent);
    await deliver(cluster, intent);
    const id = (JSON.parse(intent.answers.at(-1)!.text) as { id: string }).id;
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = '';
    const deadline = Date.now() + scaled(10_000);
    while (!seen.includes(id) && Date.now() < deadline) {
      const read = await reader.read();
      if (read.done) break;
      seen += read.value;
    }
    controller.abort();
    assert.ok(seen.includes(id), `the stream on ${elsewhere.id} never showed ${id} (owned by ${owner})`);
  });

  test('kill -9 one instance: its shards are owned again within the lease TTL, every acknowledged deposit is there and settles', async () => {
    const victim = cluster.instances.find((instance) => instance.id === 'c')!;
    const intents = intentsFor(users, 2, 500);
    all.push(...intents);
    // Deposits whose payments are in flight on c when it dies.
    await Promise.all(intents.map((intent) => deliver(cluster, intent)));
    const killed_at = Date.now();
    await kill9(victim.child);
    await settledOwnership(cluster.instances[0]!.url, ['a', 'b']);
    const failover_ms = Date.now() - killed_at;
    assert.ok(failover_ms < LEASE_MS * 2 + scaled(2000), `failover took ${failover_ms} ms`);
    await assertBooks(cluster, all, users);
  });
});

describe('a paused owner', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster('paused');
    await settledOwnership(cluster.instances[0]!.url, ['a', 'b', 'c']);
  });
  after(() => cluster.close());

  test('SIGSTOP past its lease, another takes over, SIGCONT: the paused owner applies nothing, nothing twice, books clean', async (t) => {
    const paused = cluster.instances.find((instance) => instance.id === 'c')!;
    const table = await shardTable(paused.url);
    const users = await Promise.all(
      Array.from({ length: 12 }, (_, i) => createUser(client(paused.url), `Paused ${i}`)),
    );
    const theirs = users.filter((user) => table.shards[shardOf(user.id, SHARDS)]!.owner === 'c');
    assert.ok(theirs.length > 0, 'some users live on the paused instance');
    const intents = intentsFor(theirs, 3);
    // Load on c's own accounts, sent to c, so that appends are in flight when it stops.
    const firstWave = intents.slice(0, theirs.length * 2);
    const shardsOfC = table.shards.filter((row) => row.owner === 'c').map((row) => row.shard);
    const epochsOfC = table.shards.filter((row) => row.owner === 'c').map((row) => BigInt(row.epoch));
    const appendedByC = async () => {
      const [row] = await cluster.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM journal j
        JOIN jsonb_to_recordset(${JSON.stringify(shardsOfC.map((shard, i) => ({ shard, epoch: String(epochsOfC[i]) })))}::text::jsonb)
          AS c(shard int, epoch bigint)
          ON c.shard = j.shard AND c.epoch = j.epoch`;
      return row!.n;
    };
    const flight = Promise.all(firstWave.map((intent) => send(cluster, intent, paused)));
    await eventually(async () => ((await appendedByC()) > 0 ? true : undefined));
    paused.child.kill('SIGSTOP');
    const stopped_at = Date.now();
    let beforeWaking: number;
    try {
      // The others see c gone and take its shards over, with new epochs.
      const taken = await settledOwnership(cluster.instances[0]!.url, ['a', 'b']);
      const fenced = cluster.instances.filter((i) => i.output().includes('ended the sessions of a stale owner'));
      t.diagnostic(
        `takeover from the paused owner after ${Date.now() - stopped_at} ms; sessions ended by ${fenced.map((i) => i.id).join(', ') || 'none'}`,
      );
      for (const row of taken.shards) assert.notEqual(row.owner, 'c');
      for (const shard of shardsOfC)
        assert.ok(BigInt(taken.shards[shard]!.epoch) > epochsOfC[shardsOfC.indexOf(shard)]!);
      beforeWaking = await appendedByC();
      // Meanwhile the same accounts keep working through the new owners.
      const secondWave = intents.slice(theirs.length * 2);
      await Promise.all(
        secondWave.map((intent) => deliver(cluster, intent, 10_000, [cluster.instances[0]!, cluster.instances[1]!])),
      );
    } finally {
      paused.child.kill('SIGCONT');
    }
    await flight;
    // c wakes up believing it owns its shards: it must find out before applying anything.
    await eventually(() => (/shards lost/.test(paused.output()) ? true : undefined), 10_000);
    assert.match(
      paused.output(),
      /lease expired before renewal|lease renewal failed|another instance holds a newer epoch|rebalanced to another/,
    );
    // Every first-wave request c answered with 202 really happened; the rest are retried with their keys.
    await Promise.all(intents.map((intent) => deliver(cluster, intent)));
    assert.equal(await appendedByC(), beforeWaking, "nothing was appended under c's epochs once it woke up");
    await assertBooks(cluster, intents, theirs);
    // Its sessions were ended under it (fencing): it drops its shards and carries on, it does not die.
    assert.equal(paused.child.exitCode, null, `the resumed owner died:\n${paused.output().slice(-3000)}`);
    assert.equal(paused.child.signalCode, null);
    await settledOwnership(cluster.instances[0]!.url, ['a', 'b', 'c']);
  });
});

describe('a rolling restart', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster('rolling');
    await settledOwnership(cluster.instances[0]!.url, ['a', 'b', 'c']);
  });
  after(() => cluster.close());

  test('restarting a, b then c under steady traffic loses nothing and applies nothing twice', async () => {
    const users = await Promise.all(
      Array.from({ length: 12 }, (_, i) => createUser(client(cluster.instances[0]!.url), `Rolling ${i}`)),
    );
    const intents = intentsFor(users, 8);
    let next = 0;
    const traffic = Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < intents.length) {
          const intent = intents[next++]!;
          await deliver(cluster, intent, 60_000);
          // Paced on purpose: steady traffic through the restarts, not one burst before them.
          await elapse(40);
        }
      }),
    );
    for (const id of ['a', 'b', 'c']) {
      const old = cluster.instances.find((instance) => instance.id === id)!;
      const exited = once(old.child, 'exit');
      old.child.kill('SIGTERM');
      await exited;
      await cluster.start(id, old.port);
      await settledOwnership(cluster.instances[0]!.url, ['a', 'b', 'c']);
    }
    await traffic;
    assert.equal(next, intents.length);
    await assertBooks(cluster, intents, users);
  });
});
