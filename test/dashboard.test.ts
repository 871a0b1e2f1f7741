import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, type Answer, createUser, fund, settle, startTestGateway } from './support/gateway.ts';
import { scaled, settles } from './support/time.ts';

let gateway: Gateway;
let api: ReturnType<typeof client>;
let dashboard: ReturnType<typeof client>;
let user: { id: string; api_key: string };
let pendingId: string;

before(async () => {
  gateway = await startTestGateway({ DASHBOARD_PORT: '0', DASHBOARD_ALLOWED_HOSTS: 'gateway-1' });
  api = client(gateway.url);
  dashboard = client(gateway.dashboardUrl);
  user = await createUser(api, 'Dashboard');
  await fund(gateway, api, user, 2500);
  const pending = await api('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount: 700, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(pending.status, 202);
  pendingId = pending.json.id;
});
after(() => gateway.close());

/** A GET to the dashboard with the Host header given (fetch would send its own). */
function withHost(path: string, host: string, key?: string): Promise<{ status: number; body: any }> {
  const { port } = new URL(gateway.dashboardUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host, ...(key ? { authorization: `Bearer ${key}` } : {}) };
    const sent = httpRequest({ host: '127.0.0.1', port, path, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const json = response.headers['content-type']?.startsWith('application/json');
        resolve({ status: response.statusCode ?? 0, body: json ? JSON.parse(text) : text });
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

/** GET /api/series once it holds a sample (the first comes a second after the dashboard starts). */
async function sampled(): Promise<Answer> {
  let answer: Answer | undefined;
  await settles(async () => {
    answer = await dashboard('GET', '/api/series', { key: ADMIN_KEY });
    assert.ok(answer.json.t.length > 0, 'no sample yet');
  });
  return answer!;
}

describe('the task dashboard on DASHBOARD_PORT', () => {
  test('listens on a port of its own', () => {
    assert.match(gateway.dashboardUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(gateway.dashboardUrl, gateway.url);
  });

  test('serves the page and its files, which load nothing from elsewhere', async () => {
    const page = await dashboard('GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.deepEqual(
      [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]),
      ['/vendor/uPlot.min.css', '/vendor/uPlot.iife.min.js', '/dashboard.js'],
    );
    assert.match(page.text, /<script type="module" src="\/dashboard\.js"><\/script>/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const script = await dashboard('GET', '/dashboard.js');
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(script.text, /\/api\/state/);
    assert.match(script.text, /from '\.\/charts\.js'/);
    assert.match(script.text, /from '\.\/money\.js'/);
    const charts = await dashboard('GET', '/charts.js');
    assert.match(charts.text, /\/api\/series/);
    for (const source of [script.text, charts.text]) assert.doesNotMatch(source, /innerHTML|https?:\/\//);
    for (const [path, type] of [
      ['/vendor/uPlot.iife.min.js', /^text\/javascript/],
      ['/vendor/uPlot.min.css', /^text\/css/],
    ] as const) {
      const vendor = await dashboard('GET', path);
      assert.equal(vendor.status, 200, path);
      assert.match(vendor.headers.get('content-type') ?? '', type, path);
    }
    // Only the listed files: nothing else of node_modules or the source tree is reachable.
    for (const path of ['/vendor/uPlot.esm.js', '/vendor/../package.json', '/server.ts', '/index.html']) {
      assert.equal((await dashboard('GET', path)).status, 404, path);
    }
  });

  test("amounts are formatted by the viewer's own money.js, served as it is", async () => {
    const shared = await dashboard('GET', '/money.js');
    assert.equal(shared.status, 200);
    assert.match(shared.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.equal(shared.text, (await api('GET', '/viewer/money.js')).text);
  });

  test('GET /api/state: workers in flight, recent results, circuit, actors, shards, throughput', async () => {
    const asked_at = Date.now();
    const state = await dashboard('GET', '/api/state', { key: ADMIN_KEY });
    assert.equal(state.status, 200);
    const body = state.json;
    assert.equal(body.circuit, 'closed');
    assert.ok(body.actors.alive >= 1);
    assert.equal(body.actors.mailbox_depth, 0);
    const worker = body.payments.shown.find((p: any) => p.transaction_id === pendingId);
    assert.ok(worker, 'the pending deposit has a payment worker');
    assert.equal(worker.amount, '700');
    assert.equal(typeof worker.attempts, 'number');
    assert.ok('next_at' in worker);
    assert.equal(body.payments.in_flight, body.payments.shown.length);
    const funded = body.recent.find((t: any) => t.user_id === user.id);
    assert.deepEqual([funded.type, funded.amount, funded.status], ['deposit', '2500', 'succeeded']);
    assert.deepEqual(body.dead_letters, []);
    assert.equal(body.shards.total, 64);
    assert.equal(body.shards.owned_here, 64);
    assert.equal(body.shards.owners.length, 1);
    const [owner] = body.shards.owners;
    assert.equal(owner.owner, body.instance);
    assert.equal(owner.shards.length, 64);
    assert.match(owner.epoch_max, /^[1-9]\d*$/);
    // The lease lives in Redis and is renewed every third of it: its expiry is a time to come.
    assert.match(owner.lease_expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Date.parse(owner.lease_expires_at) > asked_at, `the lease expiry ${owner.lease_expires_at} is to come`);
    assert.equal(typeof owner.actors_alive, 'number');
    assert.equal(body.throughput.window_s, 60);
    assert.ok(body.throughput.created_per_s > 0);
    assert.ok(body.throughput.finished_per_s > 0);
  });

  test('GET /api/series: the last ten minutes in columns, sampled every second', async () => {
    const answer = await sampled();
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('cache-control'), 'no-store');
    const { interval_s, window_s, t, breaker, ...measures } = answer.json;
    assert.deepEqual([interval_s, window_s], [1, 600]);
    assert.deepEqual(Object.keys(measures).sort(), [
      'bank_calls_per_s',
      'bank_error_rate',
      'bank_p50_ms',
      'bank_p99_ms',
      'created_per_s',
      'failed_per_s',
      'payments_in_flight',
      'settled_per_s',
    ]);
    assert.ok(t.length >= 1 && t.length <= window_s / interval_s, `${t.length} samples`);
    for (const [name, column] of Object.entries({ breaker, ...measures })) {
      assert.equal((column as unknown[]).length, t.length, name);
    }
    assert.ok(
      t.every((at: number, i: number) => i === 0 || at > t[i - 1]),
      'oldest first',
    );
    const now_s = Date.now() / 1000;
    assert.ok(now_s - t[t.length - 1] < scaled(5), 'the last sample is recent');
  });

  test('GET /api/series moves with deposits made and settled, and the bank calls they cost', async () => {
    const seen = (await sampled()).json;
    const from_s: number = seen.t[seen.t.length - 1];
    const made = [];
    for (const amount of [300, 400]) {
      const answer = await api('POST', '/api/v1/deposits', {
        key: user.api_key,
        body: { amount, currency: 'USD' },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(answer.status, 202);
      made.push(answer.json.id as string);
    }
    await settle(gateway, user.id, made[0]!, 'succeeded');
    await settle(gateway, user.id, made[1]!, 'failed');

    // How many happened in the intervals that began after the last sample seen: rate × its length.
    await settles(async () => {
      const series = (await dashboard('GET', '/api/series', { key: ADMIN_KEY })).json;
      const since = series.t.flatMap((at: number, i: number) =>
        i > 0 && series.t[i - 1] >= from_s ? [{ i, seconds: at - series.t[i - 1] }] : [],
      );
      const count = (column: string) =>
        Math.round(since.reduce((sum: number, { i, seconds }: any) => sum + series[column][i] * seconds, 0));
      assert.deepEqual(
        [count('created_per_s'), count('settled_per_s'), count('failed_per_s')],
        [2, 2, 1],
        'created, settled, failed',
      );
      // Each deposit was submitted to the bank (which accepts at once and settles much later).
      assert.ok(count('bank_calls_per_s') >= 2, `${count('bank_calls_per_s')} bank calls`);
      const called = since.filter(({ i }: any) => series.bank_calls_per_s[i] > 0);
      for (const { i } of called) {
        assert.equal(typeof series.bank_p50_ms[i], 'number');
        assert.ok(series.bank_p99_ms[i] >= series.bank_p50_ms[i]);
        assert.equal(series.bank_error_rate[i], 0);
      }
      assert.ok(series.breaker.every((state: string) => state === 'closed'));
      // The deposit of 700 made at the start is still waiting for the bank.
      assert.ok(series.payments_in_flight[series.t.length - 1] >= 1);
    }, 10_000);
  });

  test("GET /api/state counts the actors alive on each owner's shards", async () => {
    // An instance reports its actors per shard to Redis with each lease renewal: poll until it has.
    await settles(async () => {
      const state = await dashboard('GET', '/api/state', { key: ADMIN_KEY });
      const [owner] = state.json.shards.owners;
      assert.ok(owner.actors_alive >= 1, `actors_alive stayed ${owner.actors_alive}`);
    }, 5000);
  });

  test('GET /api/state, GET /api/series and GET /metrics need the admin key: none or another → 401', async () => {
    for (const path of ['/api/state', '/api/series', '/metrics']) {
      const anonymous = await dashboard('GET', path);
      assert.equal(anonymous.status, 401, path);
      assert.equal(anonymous.json.error, 'unauthenticated');
      assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer');
      assert.match(anonymous.json.request_id, /^[0-9a-f-]{36}$/);
      for (const key of [user.api_key, `${ADMIN_KEY}x`, ADMIN_KEY.slice(0, -1)]) {
        assert.equal((await dashboard('GET', path, { key })).status, 401, `${path} with ${key}`);
      }
      const scheme = await dashboard('GET', path, { headers: { authorization: `Basic ${ADMIN_KEY}` } });
      assert.equal(scheme.status, 401, `${path} with another scheme`);
    }
    const state = await dashboard('GET', '/api/state', { key: ADMIN_KEY });
    assert.equal(state.status, 200);
    const metrics = await dashboard('GET', '/metrics', { key: ADMIN_KEY });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^gateway_actors_alive \d+$/m);
    // Prometheus sends the scheme as "Bearer"; others may write it in any case (RFC 7235).
    const lower = await dashboard('GET', '/metrics', { headers: { authorization: `bearer ${ADMIN_KEY}` } });
    assert.equal(lower.status, 200);
  });

  test('a Host other than loopback or an allowed name is refused (421), so DNS rebinding reads nothing', async () => {
    const { port } = new URL(gateway.dashboardUrl);
    for (const host of [
      `evil.example:${port}`,
      'evil.example',
      `localhost.evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `gateway-2:${port}`,
      `localhost:${port}@evil.example`,
    ]) {
      for (const path of ['/api/state', '/metrics', '/']) {
        const refused = await withHost(path, host, ADMIN_KEY);
        assert.equal(refused.status, 421, `${host} ${path}`);
        assert.equal(refused.body.error, 'host_not_allowed');
        assert.match(refused.body.request_id, /^[0-9a-f-]{36}$/);
      }
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST', 'gateway-1:5555']) {
      assert.equal((await withHost('/api/state', host, ADMIN_KEY)).status, 200, host);
      assert.equal((await withHost('/api/state', host)).status, 401, `${host} without a key`);
    }
  });

  test("a dead letter's retry is forwarded to the public API, which checks the admin key", async () => {
    const id = uuidv7();
    await gateway.sql`
      INSERT INTO dead_letters (id, transaction_id, user_id, reason, attempts, last_error)
      VALUES (${id}, ${pendingId}, ${user.id}, 'filed by a test', 8, 'bank answered 503')`;
    const listed = await dashboard('GET', '/api/state', { key: ADMIN_KEY });
    assert.deepEqual(
      listed.json.dead_letters.map((d: any) => [d.id, d.retried_at]),
      [[id, null]],
    );

    const path = `/api/dead-letters/${id}/retry`;
    const anonymous = await dashboard('POST', path);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.json.error, 'unauthenticated');
    const asUser = await dashboard('POST', path, { key: user.api_key });
    assert.equal(asUser.status, 403);
    const unknown = await dashboard('POST', `/api/dead-letters/${uuidv7()}/retry`, { key: ADMIN_KEY });
    assert.equal(unknown.status, 404);
    const malformed = await dashboard('POST', '/api/dead-letters/not-an-id/retry', { key: ADMIN_KEY });
    assert.equal(malformed.status, 400);

    const retried = await dashboard('POST', path, { key: ADMIN_KEY });
    assert.equal(retried.status, 202, retried.text);
    assert.equal(retried.json.status, 'retrying');
    const again = await dashboard('POST', path, { key: ADMIN_KEY });
    assert.equal(again.status, 409);
    assert.equal(again.json.error, 'already_retried');
    const after = await dashboard('GET', '/api/state', { key: ADMIN_KEY });
    assert.notEqual(after.json.dead_letters[0].retried_at, null);
  });
});
