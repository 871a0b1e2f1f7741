// Fault injection: a gateway in a child process reaches Postgres and Redis through TCP proxies of the
// test's own, which cut, reset and freeze its links. Whatever happens, the process stays up, every
// request ends within its bound with the contract's status, nothing acknowledged is lost, nothing is
// invented, and the books reconcile once the links are back.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY, OBEDIENT_BANK, client, createUser, type Answer } from './support/gateway.ts';
import { kill9, spawnGateway } from './support/process.ts';
import { dropKeys, testKeyPrefix } from './support/redis.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { eventually, scaled } from './support/time.ts';

// The machine is shared: every bound below is a generous multiple of what an idle machine needs.
const DEADLINE_MS = 1500;
const ASK_TIMEOUT_MS = 1000;
/** A request's answer may come this much later than its deadline on a busy machine (event loop, GC). */
const ANSWER_SLACK_MS = scaled(2500);
/** On a quiet machine; `eventually` scales it. */
const RECOVERY_MS = 30_000;
const KEY_PREFIX = testKeyPrefix('faults');

let postgresProxy: TcpProxy;
let redisProxy: TcpProxy;
let gateway: { child: ChildProcess; url: string; output: () => string };
let request: ReturnType<typeof client>;

before(async () => {
  const database = new URL(await testDatabaseUrl());
  postgresProxy = await startTcpProxy(Number(database.port || 5432));
  const redis = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  redisProxy = await startTcpProxy(Number(redis.port || 6379));
  database.host = `127.0.0.1:${postgresProxy.port}`;
  redis.host = `127.0.0.1:${redisProxy.port}`;
  gateway = await spawnGateway({
    DATABASE_URL: database.toString(),
    REDIS_URL: redis.toString(),
    REDIS_KEY_PREFIX: KEY_PREFIX,
    REQUEST_DEADLINE_MS: String(DEADLINE_MS),
    ACTOR_ASK_TIMEOUT_MS: String(ASK_TIMEOUT_MS),
    // Every request asks Postgres for its key, so that an outage shows on every route.
    AUTH_CACHE_TTL_MS: '0',
    SHARD_LEASE_MS: String(scaled(5000)),
    SHARDS: '8',
    BANK_MIN_DELAY_MS: '20',
    BANK_MAX_DELAY_MS: '100',
    ...OBEDIENT_BANK,
    BANK_SEED: 'faults',
  });
  request = client(gateway.url);
  await eventually(async () => ((await request('GET', '/health')).status === 200 ? true : undefined), RECOVERY_MS);
});

after(async () => {
  if (gateway) await kill9(gateway.child);
  await postgresProxy?.close();
  await redisProxy?.close();
  await dropKeys(KEY_PREFIX);
});

function assertAlive(): void {
  assert.equal(gateway.child.exitCode, null, `the gateway died:\n${gateway.output().slice(-4000)}`);
  assert.equal(gateway.child.signalCode, null, 'the gateway was killed');
}

/** A request and how long its answer took. */
async function timed(...args: Parameters<typeof request>): Promise<Answer & { ms: number }> {
  const started = performance.now();
  const answer = await request(...args);
  return { ...answer, ms: performance.now() - started };
}

/** The routes a user meets, each once: who am I, a deposit, the balance, the list. */
function everyRoute(user: { id: string; api_key: string }) {
  return Promise.all([
    timed('GET', '/api/v1/me', { key: user.api_key }),
    timed('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 100, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    }),
    timed('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key }),
    timed('GET', `/api/v1/users/${user.id}/transactions`, { key: user.api_key }),
  ]);
}

function assertUnavailable(answers: (Answer & { ms: number })[], codes: string[]): void {
  for (const answer of answers) {
    assert.equal(answer.status, 503, answer.text);
    assert.ok(codes.includes(answer.json.error), answer.text);
    assert.ok(Number(answer.headers.get('retry-after')) >= 1, 'Retry-After');
    assert.ok(answer.json.request_id, 'the contract shape');
    assert.ok(answer.ms < DEADLINE_MS + ANSWER_SLACK_MS, `answered in ${Math.round(answer.ms)} ms`);
  }
}

async function recovered(user: { id: string; api_key: string }): Promise<void> {
  await eventually(async () => {
    const answers = await everyRoute(user);
    return answers.every((answer) => answer.status < 300) ? true : undefined;
  }, RECOVERY_MS);
}

test('Postgres cut: every route answers 503 storage_unavailable within its bound, then recovers by itself', async () => {
  const user = await createUser(request, 'Cut');
  postgresProxy.cut();
  try {
    assertUnavailable(await everyRoute(user), ['storage_unavailable']);
  } finally {
    postgresProxy.restore();
  }
  await recovered(user);
  assertAlive();
});

test('Postgres frozen: every route answers 503 within the deadline, then recovers when the link does', async () => {
  const user = await createUser(request, 'Frozen');
  postgresProxy.freeze();
  let answers;
  try {
    answers = await everyRoute(user);
  } finally {
    postgresProxy.restore();
  }
  // The deposit was on its way to the journal: its outcome is unknown, and its key will tell.
  assertUnavailable(answers, ['storage_unavailable', 'outcome_unknown']);
  await recovered(user);
  assertAlive();
});

test('Redis cut and frozen: requests are answered within their bound (limits degrade), then recover', async () => {
  const user = await createUser(request, 'Redis');
  for (const fault of ['cut', 'freeze'] as const) {
    redisProxy[fault]();
    try {
      for (const answer of await everyRoute(user)) {
        assert.ok(answer.ms < DEADLINE_MS + ANSWER_SLACK_MS, `${fault}: answered in ${Math.round(answer.ms)} ms`);
        assert.ok([200, 202, 503].includes(answer.status), `${fault}: ${answer.status} ${answer.text}`);
      }
    } finally {
      redisProxy.restore();
    }
    await recovered(user);
  }
  assertAlive();
});

test('Postgres links reset under load: the process survives, nothing acknowledged is lost or invented', async () => {
  const users = await Promise.all(Array.from({ length: 4 }, (_, i) => createUser(request, `Reset ${i}`)));
  const accepted = new Map<string, { user_id: string; amount: number }>();
  const statuses = new Map<string, number>();
  let loading = true;
  const load = users.map(async (user) => {
    for (let amount = 1; loading; amount += 1) {
      const answer = await request('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount, currency: 'USD' },
        idempotencyKey: crypto.randomUUID(),
      });
      const label = `${answer.status} ${answer.json?.error ?? ''}`.trim();
      statuses.set(label, (statuses.get(label) ?? 0) + 1);
      if (answer.status === 202) accepted.set(answer.json.id, { user_id: user.id, amount });
      else assert.equal(answer.status, 503, answer.text);
    }
  });
  // Twenty resets, each once some traffic has passed since the last.
  for (let reset = 0; reset < 20; reset += 1) {
    const before = accepted.size;
    await eventually(() => (accepted.size > before || statuses.size > 1 ? true : undefined), RECOVERY_MS);
    postgresProxy.reset();
  }
  loading = false;
  await Promise.all(load);
  assertAlive();
  assert.ok(accepted.size > 0, JSON.stringify([...statuses]));

  // Every 202 is there, once, with its amount; every deposit of these users is one of them or
  // one whose answer was 503 outcome_unknown (committed, unconfirmed): none is invented.
  await recovered(users[0]!);
  for (const [id, { user_id, amount }] of accepted) {
    const shown = await request('GET', `/api/v1/deposits/${id}`, { key: ADMIN_KEY });
    assert.equal(shown.status, 200, shown.text);
    assert.equal(shown.json.user_id, user_id);
    assert.equal(shown.json.amount, amount);
  }
  const unknown = statuses.get('503 outcome_unknown') ?? 0;
  let listed = 0;
  for (const user of users) {
    const page = await request('GET', `/api/v1/users/${user.id}/transactions?limit=100`, { key: ADMIN_KEY });
    const ids: string[] = page.json.data.map((row: { id: string }) => row.id);
    listed += ids.length;
    assert.equal(new Set(ids).size, ids.length, 'no transaction listed twice');
  }
  assert.ok(
    listed >= accepted.size && listed <= accepted.size + unknown,
    `${listed} listed, ${accepted.size} accepted: ${JSON.stringify([...statuses])}`,
  );
  // The report reads every account within the 1.5 s deadline, which a loaded machine can miss just after
  // the resets: a 503 is the contract's "retry shortly", so the report is asked again until it answers.
  const report = await eventually(async () => {
    const answer = await request('GET', '/api/v1/admin/reconciliation', { key: ADMIN_KEY });
    if (answer.status !== 503) return answer;
    return undefined;
  }, RECOVERY_MS);
  assert.equal(report.status, 200, report.text);
  assert.equal(report.json.ok, true, report.text);
});
