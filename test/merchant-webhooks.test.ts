import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, settle, startTestGateway } from './support/gateway.ts';
import { eventually, scaled } from './support/time.ts';
import { startReceiver, type Received } from './support/webhook-receiver.ts';

// Merchant webhooks end to end: a real gateway, real Postgres, and a receiving HTTP server in this
// process. Short retry settings so that a schedule of hours runs in milliseconds.
const SETTINGS = {
  MERCHANT_WEBHOOKS_ALLOW_PRIVATE: 'true',
  MERCHANT_WEBHOOKS_POLL_MS: '25',
  MERCHANT_WEBHOOKS_RETRY_BASE_MS: '40',
  MERCHANT_WEBHOOKS_RETRY_MAX_MS: '160',
  MERCHANT_WEBHOOKS_ATTEMPTS_MAX: '4',
  MERCHANT_WEBHOOKS_DISABLE_AFTER_FAILURES: '6',
  // On the machine's time scale: a slow receiver (300 ms) must stay within it on a loaded machine.
  MERCHANT_WEBHOOKS_TIMEOUT_MS: String(scaled(1000)),
};

let gateway: Gateway;
let request: ReturnType<typeof client>;

before(async () => {
  gateway = await startTestGateway(SETTINGS);
  request = client(gateway.url);
});

after(async () => {
  await gateway.close();
});

type User = { id: string; api_key: string };

async function register(user: User, url: string, event_types: string[] = ['*']) {
  const answer = await request('POST', '/api/v1/webhook-endpoints', {
    key: user.api_key,
    body: { url, event_types },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 201, answer.text);
  return answer.json as { id: string; secret: string; enabled: boolean };
}

async function deposit(user: User, amount = 1050): Promise<string> {
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json.id as string;
}

/** The deliveries' log of a user, filtered. */
async function deliveries(user: User, query = '') {
  const answer = await request('GET', `/api/v1/webhook-deliveries${query}`, { key: user.api_key });
  assert.equal(answer.status, 200, answer.text);
  return answer.json.data as {
    id: string;
    event_id: string;
    event_type: string;
    status: string;
    attempts: { at: string; status_code: number | null; error: string | null; latency_ms: number }[];
  }[];
}

const received = (receiver: { received: Received[] }, count: number, timeout_ms = 10_000) =>
  eventually(() => (receiver.received.length >= count ? receiver.received : undefined), timeout_ms);

test("a deposit's events arrive in order, signed per Standard Webhooks, with the transaction as the API shows it", async () => {
  const receiver = await startReceiver();
  try {
    const user = await createUser(request, 'Hooks Order');
    const endpoint = await register(user, receiver.url);
    assert.match(endpoint.secret, /^whsec_/);
    const id = await deposit(user, 42424);
    await received(receiver, 2);
    await settle(gateway, user.id, id, 'succeeded');
    const all = await received(receiver, 3);
    assert.deepEqual(
      all.map((r) => r.json.type),
      ['deposit.pending', 'deposit.processing', 'deposit.succeeded'],
    );
    const verifier = new Webhook(endpoint.secret);
    for (const r of all) {
      verifier.verify(r.body, r.headers as Record<string, string>);
      assert.equal(r.headers['webhook-id'], r.json.id);
      assert.equal(r.json.data.id, id);
      assert.equal(r.json.data.amount, 42424);
      assert.equal(r.json.data.status, r.json.type.split('.')[1]);
      assert.equal('request_id' in r.json.data, false);
    }
    const shown = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
    const { events: _events, ...transaction } = shown.json;
    assert.deepEqual(all[2]!.json.data, transaction);
    await eventually(async () => ((await deliveries(user, '?status=succeeded')).length === 3 ? true : undefined));
    const log = await deliveries(user);
    assert.equal(log.length, 3);
    for (const entry of log) {
      assert.equal(entry.attempts.length, 1);
      assert.equal(entry.attempts[0]!.status_code, 200);
      assert.ok(entry.attempts[0]!.latency_ms >= 0);
      // One delivery shows the event as the endpoint received it, byte for byte in JSON terms.
      const one = await request('GET', `/api/v1/webhook-deliveries/${entry.id}`, { key: user.api_key });
      assert.equal(one.status, 200, one.text);
      const sent = all.find((r) => r.json.id === entry.event_id)!;
      assert.deepEqual(one.json.event, sent.json);
      assert.deepEqual(one.json.attempts, entry.attempts);
    }
  } finally {
    await receiver.close();
  }
});

test('an endpoint subscribed to some types gets only those; a user with no endpoint gets no delivery', async () => {
  const receiver = await startReceiver();
  try {
    const user = await createUser(request, 'Hooks Filter');
    const bystander = await createUser(request, 'Hooks None');
    await register(user, receiver.url, ['deposit.succeeded']);
    const id = await deposit(user);
    await deposit(bystander);
    await settle(gateway, user.id, id, 'succeeded');
    const [only] = await received(receiver, 1);
    assert.equal(only!.json.type, 'deposit.succeeded');
    assert.deepEqual(await deliveries(bystander), []);
    assert.equal((await deliveries(user)).length, 1);
  } finally {
    await receiver.close();
  }
});

test('a failing receiver is retried with backoff until it recovers; the same webhook-id every time', async () => {
  const receiver = await startReceiver((_, index) => (index < 3 ? 500 : 200));
  try {
    const user = await createUser(request, 'Hooks Retry');
    await register(user, receiver.url, ['deposit.pending']);
    await deposit(user);
    const all = await received(receiver, 4);
    assert.equal(new Set(all.map((r) => r.headers['webhook-id'])).size, 1);
    const [entry] = await eventually(async () => {
      const log = await deliveries(user, '?status=succeeded');
      return log.length === 1 ? log : undefined;
    });
    assert.deepEqual(
      entry!.attempts.map((a) => a.status_code),
      [500, 500, 500, 200],
    );
    // Full jitter under an exponential bound: never sooner than the schedule allows in all.
    const times = entry!.attempts.map((a) => Date.parse(a.at));
    assert.ok(times.every((t, i) => i === 0 || t >= times[i - 1]!));
  } finally {
    await receiver.close();
  }
});

test("a transaction's later event waits while an earlier one to the same endpoint is undelivered", async () => {
  let pendingRefused = true;
  const receiver = await startReceiver((r) => (r.json.type === 'deposit.pending' && pendingRefused ? 500 : 200));
  try {
    const user = await createUser(request, 'Hooks In Order');
    await register(user, receiver.url);
    const id = await deposit(user);
    await eventually(async () => {
      const shown = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
      return shown.json.status === 'processing' ? true : undefined;
    });
    await settle(gateway, user.id, id, 'succeeded');
    await received(receiver, 2);
    pendingRefused = false;
    await eventually(() => (receiver.received.some((r) => r.json.type === 'deposit.succeeded') ? true : undefined));
    const types = receiver.received.map((r) => r.json.type);
    const firstOther = types.findIndex((type) => type !== 'deposit.pending');
    assert.ok(firstOther >= 3, `${types.join(', ')}`);
    assert.deepEqual(types.slice(firstOther), ['deposit.processing', 'deposit.succeeded']);
  } finally {
    await receiver.close();
  }
});

test('a delivery still refused after its last attempt is failed, every attempt in its log', async () => {
  const receiver = await startReceiver(() => 500);
  try {
    const user = await createUser(request, 'Hooks Give Up');
    const endpoint = await register(user, receiver.url, ['deposit.pending']);
    await deposit(user);
    const [failed] = await eventually(async () => {
      const log = await deliveries(user, '?status=failed');
      return log.length === 1 ? log : undefined;
    });
    assert.deepEqual(
      failed!.attempts.map((a) => a.status_code),
      [500, 500, 500, 500],
    );
    assert.equal(receiver.received.length, 4);
    const shown = await request('GET', `/api/v1/webhook-endpoints/${endpoint.id}`, { key: user.api_key });
    assert.equal(shown.json.enabled, true, 'four failures are fewer than the six that disable an endpoint');
  } finally {
    await receiver.close();
  }
});

test('a receiver that never answers times out; a slow one within the timeout is delivered', async () => {
  const stalled = await startReceiver(() => 'hold');
  const slow = await startReceiver(() => new Promise((resolve) => setTimeout(() => resolve(200), 300)));
  try {
    const user = await createUser(request, 'Hooks Timeout');
    const stalledEndpoint = await register(user, stalled.url, ['deposit.pending']);
    const slowEndpoint = await register(user, slow.url, ['deposit.pending']);
    await deposit(user);
    const [timedOut] = await eventually(async () => {
      const log = await deliveries(user, `?endpoint_id=${stalledEndpoint.id}`);
      return log[0] && log[0].attempts.length > 0 ? log : undefined;
    });
    assert.equal(timedOut!.attempts[0]!.status_code, null);
    assert.match(timedOut!.attempts[0]!.error ?? '', /timeout/);
    assert.ok(timedOut!.attempts[0]!.latency_ms >= scaled(900), `latency ${timedOut!.attempts[0]!.latency_ms}`);
    const [delivered] = await eventually(async () => {
      const log = await deliveries(user, `?endpoint_id=${slowEndpoint.id}&status=succeeded`);
      return log.length === 1 ? log : undefined;
    });
    assert.ok(delivered!.attempts[0]!.latency_ms >= 250);
  } finally {
    await stalled.close();
    await slow.close();
  }
});

test('a run of failures disables the endpoint with the reason; enabling it delivers what waited', async () => {
  const receiver = await startReceiver(() => 503);
  try {
    const user = await createUser(request, 'Hooks Disable');
    const endpoint = await register(user, receiver.url, ['deposit.pending']);
    // Three deliveries of four attempts each: when the sixth failure in a row disables the endpoint,
    // at most one of them has used all its attempts; the others wait for the endpoint.
    for (let i = 0; i < 3; i += 1) await deposit(user);
    const disabled = await eventually(async () => {
      const shown = await request('GET', `/api/v1/webhook-endpoints/${endpoint.id}`, { key: user.api_key });
      return shown.json.enabled === false ? shown.json : undefined;
    });
    assert.match(disabled.disabled_reason, /^6 consecutive failed deliveries; the last: HTTP 503$/);
    // The sixth failure disables it; another delivery's attempt may have been in flight by then.
    const attempts = receiver.received.length;
    assert.ok(attempts >= 6 && attempts <= 8, `${attempts} attempts`);
    assert.equal((await deliveries(user, '?status=pending')).length >= 2, true);

    receiver.answerWith(() => 200);
    const enabled = await request('POST', `/api/v1/webhook-endpoints/${endpoint.id}/enable`, {
      key: user.api_key,
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(enabled.status, 200);
    assert.equal(enabled.json.enabled, true);
    assert.equal(enabled.json.disabled_reason, null);
    await eventually(async () => ((await deliveries(user, '?status=pending')).length === 0 ? true : undefined));
    assert.ok((await deliveries(user, '?status=succeeded')).length >= 2);
  } finally {
    await receiver.close();
  }
});

test('a delivery is redelivered on request with the same webhook-id', async () => {
  const receiver = await startReceiver();
  try {
    const user = await createUser(request, 'Hooks Redeliver');
    await register(user, receiver.url, ['deposit.pending']);
    await deposit(user);
    const [first] = await received(receiver, 1);
    const [entry] = await eventually(async () => {
      const log = await deliveries(user, '?status=succeeded&event_type=deposit.pending');
      return log.length === 1 ? log : undefined;
    });
    const again = await request('POST', `/api/v1/webhook-deliveries/${entry!.id}/redeliver`, {
      key: user.api_key,
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(again.status, 202, again.text);
    assert.equal(again.json.status, 'pending');
    const all = await received(receiver, 2);
    assert.equal(all[1]!.headers['webhook-id'], first!.headers['webhook-id']);
    assert.equal(all[1]!.body, first!.body);
    await eventually(async () => {
      const [shown] = await deliveries(user);
      return shown!.status === 'succeeded' && shown!.attempts.length === 2 ? true : undefined;
    });
  } finally {
    await receiver.close();
  }
});

test('a rotated secret: both the new and the old one sign during the overlap; the new one is shown once', async () => {
  const receiver = await startReceiver();
  try {
    const user = await createUser(request, 'Hooks Rotate');
    const endpoint = await register(user, receiver.url, ['deposit.pending']);
    const key = crypto.randomUUID();
    const rotate = () =>
      request('POST', `/api/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, {
        key: user.api_key,
        idempotencyKey: key,
      });
    const rotated = await rotate();
    assert.equal(rotated.status, 200, rotated.text);
    assert.match(rotated.json.secret, /^whsec_/);
    assert.notEqual(rotated.json.secret, endpoint.secret);
    const replay = await rotate();
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(replay.json.secret, null);
    await deposit(user);
    const [r] = await received(receiver, 1);
    assert.equal(String(r!.headers['webhook-signature']).split(' ').length, 2);
    new Webhook(rotated.json.secret as string).verify(r!.body, r!.headers as Record<string, string>);
    new Webhook(endpoint.secret).verify(r!.body, r!.headers as Record<string, string>);
  } finally {
    await receiver.close();
  }
});

test("another user's endpoints and deliveries are 404; the admin sees and registers them", async () => {
  const receiver = await startReceiver();
  try {
    const owner = await createUser(request, 'Hooks Owner');
    const other = await createUser(request, 'Hooks Other');
    const endpoint = await register(owner, receiver.url, ['deposit.pending']);
    await deposit(owner);
    const [delivery] = await eventually(async () => {
      const log = await deliveries(owner);
      return log.length === 1 ? log : undefined;
    });
    const key = () => crypto.randomUUID();
    const asOther = [
      await request('GET', `/api/v1/webhook-endpoints/${endpoint.id}`, { key: other.api_key }),
      await request('DELETE', `/api/v1/webhook-endpoints/${endpoint.id}`, { key: other.api_key }),
      await request('POST', `/api/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, {
        key: other.api_key,
        idempotencyKey: key(),
      }),
      await request('POST', `/api/v1/webhook-endpoints/${endpoint.id}/enable`, {
        key: other.api_key,
        idempotencyKey: key(),
      }),
      await request('POST', `/api/v1/webhook-deliveries/${delivery!.id}/redeliver`, {
        key: other.api_key,
        idempotencyKey: key(),
      }),
      await request('GET', `/api/v1/webhook-deliveries?user_id=${owner.id}`, { key: other.api_key }),
      await request('GET', `/api/v1/webhook-deliveries/${delivery!.id}`, { key: other.api_key }),
      await request('POST', '/api/v1/webhook-endpoints', {
        key: other.api_key,
        body: { url: receiver.url, event_types: ['*'], user_id: owner.id },
        idempotencyKey: key(),
      }),
    ];
    assert.deepEqual(
      asOther.map((a) => a.status),
      [404, 404, 404, 404, 404, 404, 404, 404],
    );
    const seenByAdmin = await request('GET', `/api/v1/webhook-deliveries/${delivery!.id}`, { key: ADMIN_KEY });
    assert.equal(seenByAdmin.status, 200, seenByAdmin.text);
    assert.equal(seenByAdmin.json.event.type, 'deposit.pending');
    assert.deepEqual((await request('GET', '/api/v1/webhook-endpoints', { key: other.api_key })).json.data, []);
    assert.deepEqual(await deliveries(other), []);

    const byAdmin = await request('POST', '/api/v1/webhook-endpoints', {
      key: ADMIN_KEY,
      body: { url: receiver.url, event_types: ['withdrawal.failed'], user_id: owner.id, description: 'ops' },
      idempotencyKey: key(),
    });
    assert.equal(byAdmin.status, 201, byAdmin.text);
    const listed = await request('GET', `/api/v1/webhook-endpoints?user_id=${owner.id}`, { key: ADMIN_KEY });
    assert.equal(listed.json.data.length, 2);
    const removed = await request('DELETE', `/api/v1/webhook-endpoints/${endpoint.id}`, { key: owner.api_key });
    assert.equal(removed.status, 204);
    assert.equal((await request('GET', `/api/v1/webhook-endpoints/${endpoint.id}`, { key: ADMIN_KEY })).status, 404);
  } finally {
    await receiver.close();
  }
});

test('registering an endpoint replays its answer without the secret, and refuses bad URLs', async () => {
  const user = await createUser(request, 'Hooks Register');
  const key = crypto.randomUUID();
  const body = { url: 'http://127.0.0.1:9/hooks', event_types: ['deposit.succeeded'] };
  const first = await request('POST', '/api/v1/webhook-endpoints', { key: user.api_key, body, idempotencyKey: key });
  const replay = await request('POST', '/api/v1/webhook-endpoints', { key: user.api_key, body, idempotencyKey: key });
  assert.equal(first.status, 201);
  assert.equal(replay.status, 201);
  assert.equal(replay.json.id, first.json.id);
  assert.equal(replay.json.secret, null);
  for (const bad of [
    { url: 'ftp://example.test/x', event_types: ['*'] },
    { url: 'https://user:pw@127.0.0.1/x', event_types: ['*'] },
    { url: 'https://127.0.0.1/x', event_types: ['deposit.refunded'] },
    { url: 'https://127.0.0.1/x', event_types: [] },
  ]) {
    const refused = await request('POST', '/api/v1/webhook-endpoints', {
      key: user.api_key,
      body: bad,
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(refused.status, 400, `${JSON.stringify(bad)}: ${refused.text}`);
  }
});

test('in production (private addresses not allowed) registration refuses http, loopback, private and metadata URLs', async () => {
  const production = await startTestGateway();
  try {
    const call = client(production.url);
    const user = await createUser(call, 'Hooks Production');
    for (const url of [
      'http://shop.example/hooks',
      'https://127.0.0.1/hooks',
      'https://localhost/hooks',
      'https://10.0.0.1/hooks',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/hooks',
      'https://[::ffff:192.168.0.1]/hooks',
    ]) {
      const refused = await call('POST', '/api/v1/webhook-endpoints', {
        key: user.api_key,
        body: { url, event_types: ['*'] },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(refused.status, 400, url);
      assert.equal(refused.json.details[0].field, 'url', url);
    }
    assert.deepEqual((await call('GET', '/api/v1/webhook-endpoints', { key: user.api_key })).json.data, []);
  } finally {
    await production.close();
  }
});
