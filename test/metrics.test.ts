import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, fund, startTestGateway } from './support/gateway.ts';
import { settles } from './support/time.ts';

// promtool (Prometheus's own checker) comes from Debian's prometheus package; CI extracts just that binary.
const promtool = spawnSync('promtool', ['--version']).status === 0;

let gateway: Gateway;
let request: ReturnType<typeof client>;

before(async () => {
  gateway = await startTestGateway();
  request = client(gateway.url);
});
after(() => gateway.close());

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (the format itself is promtool's to judge, below). */
function samples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      assert.ok(match, `not a sample line: ${line}`);
      const labels = Object.fromEntries(
        [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
      );
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
}

/** The value of the one sample with this name and these labels (among others), or undefined. */
function valueOf(all: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

async function scrape(): Promise<{ text: string; all: Sample[] }> {
  const answer = await request('GET', '/metrics', { key: ADMIN_KEY });
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return { text: answer.text, all: samples(answer.text) };
}

describe('GET /metrics on the public port', () => {
  test('is for the admin key only: 401 without a key, 403 with a user key, in the contract shape', async () => {
    const anonymous = await request('GET', '/metrics');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.json.error, 'unauthenticated');
    const user = await createUser(request, 'Metrics Reader');
    const forbidden = await request('GET', '/metrics', { key: user.api_key });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json.error, 'forbidden');
    assert.equal(typeof forbidden.json.request_id, 'string');
  });

  test('after a deposit: requests by route pattern, transactions, bank calls, journal, actors, shards, process', async () => {
    const user = await createUser(request, 'Metrics Depositor');
    await fund(gateway, request, user, 5000);
    const deposit = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 100, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(deposit.status, 202);
    await request('GET', `/api/v1/deposits/${deposit.json.id}`, { key: user.api_key });
    await request('GET', `/api/v1/deposits/${deposit.json.id}`);
    await request('GET', '/no/such/route');

    await settles(async () => {
      const { all } = await scrape();
      assert.ok((valueOf(all, 'gateway_bank_calls_total', { operation: 'submit', outcome: 'accepted' }) ?? 0) >= 2);
    });
    const { all } = await scrape();

    const requests = (labels: Record<string, string>) => valueOf(all, 'gateway_http_requests_total', labels) ?? 0;
    assert.ok(requests({ method: 'POST', route: '/api/v1/deposits', status: '202' }) >= 2);
    assert.equal(requests({ method: 'GET', route: '/api/v1/deposits/:id', status: '200' }), 1);
    // Refused before the router ran, and still counted under the route it tried.
    assert.equal(requests({ method: 'GET', route: '/api/v1/deposits/:id', status: '401' }), 1);
    assert.ok(requests({ method: 'GET', route: 'unmatched', status: '404' }) >= 1);
    const routes = new Set(all.filter((s) => s.name === 'gateway_http_requests_total').map((s) => s.labels.route));
    for (const route of routes) assert.doesNotMatch(route!, /[0-9a-f]{8}-[0-9a-f]{4}-/, 'a raw path became a label');
    const latency = { method: 'POST', route: '/api/v1/deposits', status: '202' };
    assert.ok((valueOf(all, 'gateway_http_request_duration_seconds_count', latency) ?? 0) >= 2);
    assert.ok((valueOf(all, 'gateway_http_request_duration_seconds_sum', latency) ?? 0) > 0);

    assert.ok((valueOf(all, 'gateway_transactions_created_total', { type: 'deposit' }) ?? 0) >= 2);
    const succeeded = { type: 'deposit', outcome: 'succeeded' };
    assert.ok((valueOf(all, 'gateway_transactions_finished_total', succeeded) ?? 0) >= 1);
    assert.ok((valueOf(all, 'gateway_journal_batch_size_count') ?? 0) >= 3);
    assert.ok((valueOf(all, 'gateway_journal_batch_size_bucket', { le: '+Inf' }) ?? 0) >= 3);
    assert.ok((valueOf(all, 'gateway_journal_commit_duration_seconds_sum') ?? 0) > 0);
    assert.ok((valueOf(all, 'gateway_bank_call_duration_seconds_count', { operation: 'submit' }) ?? 0) >= 2);

    assert.equal(valueOf(all, 'gateway_bank_circuit_state', { state: 'closed' }), 1);
    assert.equal(valueOf(all, 'gateway_bank_circuit_state', { state: 'open' }), 0);
    assert.ok((valueOf(all, 'gateway_actors_alive') ?? 0) >= 1);
    assert.equal(valueOf(all, 'gateway_actor_mailbox_depth'), 0);
    assert.equal(valueOf(all, 'gateway_shards_owned'), 64);
    assert.ok((valueOf(all, 'gateway_payments_in_flight') ?? 0) >= 1, 'the second deposit waits for the bank');
    assert.equal(valueOf(all, 'gateway_payment_retries_total'), undefined, 'no retry has happened');
    assert.equal(valueOf(all, 'gateway_dead_letters_total'), 0);
    assert.ok((valueOf(all, 'process_cpu_user_seconds_total') ?? 0) > 0);
    assert.ok((valueOf(all, 'nodejs_heap_size_used_bytes') ?? 0) > 0);
  });

  test(
    'promtool check metrics: the exposition parses, and our own families pass its lint',
    { skip: !promtool && 'promtool is not installed' },
    async () => {
      const { text } = await scrape();
      const check = (input: string) => spawnSync('promtool', ['check', 'metrics'], { input, encoding: 'utf8' });
      // Exit 1 is a parse failure, 3 lint findings. prom-client names three of its default gauges
      // nodejs_active_*_total, which the lint flags: in the whole exposition, those alone are allowed.
      const whole = check(text);
      const report = `${whole.stdout}${whole.stderr}`;
      assert.ok(whole.status === 0 || whole.status === 3, report);
      for (const finding of report.split('\n').filter((line) => /^\w/.test(line))) {
        assert.match(finding, /^nodejs_active_\w+_total non-counter metrics/);
      }
      const ours = text.split('\n').filter((line) => /^(# (HELP|TYPE) )?gateway_/.test(line));
      const strict = check(`${ours.join('\n')}\n`);
      assert.equal(strict.status, 0, `${strict.stdout}${strict.stderr}`);
    },
  );
});
