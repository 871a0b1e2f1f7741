import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { captureLines } from './support/log-capture.ts';
import { ADMIN_KEY, client, createUser, settle, startTestGateway, type Answer } from './support/gateway.ts';
import { elapse } from './support/time.ts';

// The gateway logs at info into memory, so that the last test can read every line this file caused.
function startLoggedGateway(destination: Writable): Promise<Gateway> {
  // A short key cache, so that the revoked key below stops working soon (README: AUTH_CACHE_TTL_MS).
  // Merchant webhook endpoints on loopback (nothing listens there: their deliveries just fail).
  return startTestGateway(
    { LOG_LEVEL: 'info', AUTH_CACHE_TTL_MS: String(KEY_CACHE_TTL_MS), MERCHANT_WEBHOOKS_ALLOW_PRIVATE: 'true' },
    destination,
  );
}

/**
 * A user with a settled deposit and a pending withdrawal, a webhook endpoint and a delivery to it, whose
 * ids the matrix's paths name.
 */
interface Subject {
  id: string;
  api_key: string;
  deposit_id: string;
  withdrawal_id: string;
  endpoint_id: string;
  delivery_id: string;
}

const HOOK_URL = 'http://127.0.0.1:9/hooks';

const KEY_CACHE_TTL_MS = 200;
const log = captureLines();
const unknownKey = `pgw_${randomBytes(32).toString('base64url')}`;
const issuedKeys: string[] = [];
let gateway: Gateway;
let request: ReturnType<typeof client>;
let owner: Subject;
let other: Subject;
let revoked: Subject;

const post = (path: string, key: string, body: unknown) =>
  request('POST', path, { key, body, idempotencyKey: crypto.randomUUID() });

async function subject(name: string): Promise<Subject> {
  const user = await createUser(request, name);
  issuedKeys.push(user.api_key);
  const endpoint = await post('/api/v1/webhook-endpoints', user.api_key, { url: HOOK_URL, event_types: ['*'] });
  assert.equal(endpoint.status, 201, endpoint.text);
  const deposit = await post('/api/v1/deposits', user.api_key, { amount: 10_000, currency: 'USD' });
  assert.equal(deposit.status, 202, deposit.text);
  await settle(gateway, user.id, deposit.json.id, 'succeeded');
  const withdrawal = await post('/api/v1/withdrawals', user.api_key, { amount: 100, currency: 'USD' });
  assert.equal(withdrawal.status, 202, withdrawal.text);
  // Written in the deposit's own commit: there already.
  const deliveries = await request('GET', '/api/v1/webhook-deliveries', { key: user.api_key });
  return {
    id: user.id,
    api_key: user.api_key,
    deposit_id: deposit.json.id,
    withdrawal_id: withdrawal.json.id,
    endpoint_id: endpoint.json.id,
    delivery_id: deliveries.json.data[0].id,
  };
}

before(async () => {
  gateway = await startLoggedGateway(log.stream);
  request = client(gateway.url);
  [owner, other, revoked] = [await subject('Owner'), await subject('Other'), await subject('Revoked')];
  await gateway.sql`UPDATE users SET revoked_at = now() WHERE id = ${revoked.id}`;
  // The revoked key was used just above, so it is cached: it works until the cache entry expires. The
  // TTL passing is the behaviour relied on.
  await elapse(KEY_CACHE_TTL_MS + 50);
});
after(() => gateway.close());

/** Who calls: the Authorization header they send, and whose resources the paths name. */
const PRINCIPALS = [
  { name: 'the owner', authorization: () => `Bearer ${owner.api_key}`, target: () => owner },
  { name: 'another user', authorization: () => `Bearer ${other.api_key}`, target: () => owner },
  { name: 'the admin', authorization: () => `Bearer ${ADMIN_KEY}`, target: () => owner },
  { name: 'no key', authorization: () => undefined, target: () => owner },
  { name: 'a malformed Bearer key', authorization: () => 'Bearer !!!', target: () => owner },
  { name: 'Basic credentials', authorization: () => 'Basic abc', target: () => owner },
  { name: 'an unknown key', authorization: () => `Bearer ${unknownKey}`, target: () => owner },
  {
    name: 'a revoked key, on its own resources',
    authorization: () => `Bearer ${revoked.api_key}`,
    target: () => revoked,
  },
] as const;

// prettier-ignore
/** The authorization matrix: each route's expected status for each principal above, in that order. */
const MATRIX: readonly (readonly [string, readonly number[]])[] = [
  //                                                owner other admin none bad  basic unknown revoked
  ['POST /api/v1/users',                              [403,  403,  201,  401, 401, 401,  401,    401]],
  ['GET /api/v1/users',                               [403,  403,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/users/{user_id}',                     [200,  404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/users/{user_id}/api-keys',            [200,  404,  200,  401, 401, 401,  401,    401]],
  ['POST /api/v1/users/{user_id}/api-keys',           [201,  404,  201,  401, 401, 401,  401,    401]],
  ['POST /api/v1/users/{user_id}/api-keys/{spare_key_id}/revoke', [200, 404, 200, 401, 401, 401, 401, 401]],
  ['GET /api/v1/transactions?user_id={user_id}',      [200,  404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/users/{user_id}/balance',             [200,  404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/users/{user_id}/transactions',        [200,  404,  200,  401, 401, 401,  401,    401]],
  ['POST /api/v1/deposits',                           [202,  404,  202,  401, 401, 401,  401,    401]],
  ['GET /api/v1/deposits?user_id={user_id}',          [200,  404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/deposits/{deposit_id}',               [200,  404,  200,  401, 401, 401,  401,    401]],
  ['POST /api/v1/withdrawals',                        [202,  404,  202,  401, 401, 401,  401,    401]],
  ['GET /api/v1/withdrawals?user_id={user_id}',       [200,  404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/withdrawals/{withdrawal_id}',         [200,  404,  200,  401, 401, 401,  401,    401]],
  ['POST /api/v1/webhook-endpoints',                  [201,  404,  201,  401, 401, 401,  401,    401]],
  ['GET /api/v1/webhook-endpoints?user_id={user_id}', [200,  404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/webhook-endpoints/{endpoint_id}',     [200,  404,  200,  401, 401, 401,  401,    401]],
  ['DELETE /api/v1/webhook-endpoints/{spare_endpoint_id}', [204, 404, 204, 401, 401, 401, 401,  401]],
  ['POST /api/v1/webhook-endpoints/{endpoint_id}/rotate-secret', [200, 404, 200, 401, 401, 401, 401, 401]],
  ['POST /api/v1/webhook-endpoints/{endpoint_id}/enable', [200, 404, 200, 401, 401, 401, 401,    401]],
  ['GET /api/v1/webhook-deliveries?user_id={user_id}', [200, 404,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/webhook-deliveries/{delivery_id}',  [200,  404,  200,  401, 401, 401,  401,    401]],
  ['POST /api/v1/webhook-deliveries/{delivery_id}/redeliver', [202, 404, 202, 401, 401, 401, 401, 401]],
  ['GET /api/v1/admin/reconciliation',                [403,  403,  200,  401, 401, 401,  401,    401]],
  ['GET /api/v1/admin/shards',                        [403,  403,  200,  401, 401, 401,  401,    401]],
];

/** The POST bodies; a body that names a user names the target, so that another user acts for the owner. */
const BODIES: Record<string, (target: Subject) => unknown> = {
  '/api/v1/users': () => ({ name: 'Matrix', email: `matrix-${crypto.randomUUID()}@example.test` }),
  '/api/v1/users/{user_id}/api-keys': () => ({ label: 'matrix' }),
  '/api/v1/users/{user_id}/api-keys/{spare_key_id}/revoke': () => ({}),
  '/api/v1/deposits': (target) => ({ amount: 100, currency: 'USD', user_id: target.id }),
  '/api/v1/withdrawals': (target) => ({ amount: 1, currency: 'USD', user_id: target.id }),
  '/api/v1/webhook-endpoints': (target) => ({ url: HOOK_URL, event_types: ['*'], user_id: target.id }),
  '/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret': () => ({}),
  '/api/v1/webhook-endpoints/{endpoint_id}/enable': () => ({}),
  '/api/v1/webhook-deliveries/{delivery_id}/redeliver': () => ({}),
};

const ERROR_CODES: Record<number, string> = { 401: 'unauthenticated', 403: 'forbidden', 404: 'not_found' };

function assertErrorShape(answer: Answer, code: string): void {
  assert.deepEqual(Object.keys(answer.json).sort(), ['error', 'message', 'request_id']);
  assert.equal(answer.json.error, code);
  assert.equal(typeof answer.json.message, 'string');
  assert.equal(answer.json.request_id, answer.headers.get('x-request-id'));
}

/**
 * A key of the target that a revocation may take away (the admin adds it: the target keeps the key the
 * other tests use); any id where the target can get none (a revoked user), whose request is refused first.
 */
async function spareKey(target: Subject): Promise<string> {
  const added = await post(`/api/v1/users/${target.id}/api-keys`, ADMIN_KEY, { label: 'spare' });
  return added.status === 201 ? (added.json.id as string) : crypto.randomUUID();
}

/** An endpoint of the target for a deletion to take away; any id where the target can have none (a revoked user). */
async function spareEndpoint(target: Subject): Promise<string> {
  const added = await post('/api/v1/webhook-endpoints', ADMIN_KEY, {
    url: HOOK_URL,
    event_types: ['*'],
    user_id: target.id,
  });
  return added.status === 201 ? (added.json.id as string) : crypto.randomUUID();
}

/** A successful answer shows the target's resources and nobody else's. */
async function assertConcerns(answer: Answer, route: string, target: Subject): Promise<void> {
  if (answer.status === 204) return; // nothing shown.
  const json = answer.json;
  if (route === 'GET /api/v1/users/{user_id}') assert.equal(json.id, target.id);
  if (route === 'POST /api/v1/users') issuedKeys.push(json.api_key);
  if (route === 'POST /api/v1/users/{user_id}/api-keys') {
    // The key works, and is revoked again so that the target stays under its limit of active keys.
    assert.equal((await request('GET', '/api/v1/me', { key: json.api_key })).json.id, target.id);
    issuedKeys.push(json.api_key);
    assert.equal((await post(`/api/v1/users/${target.id}/api-keys/${json.id}/revoke`, ADMIN_KEY, {})).status, 200);
  }
  if (typeof json.user_id === 'string') assert.equal(json.user_id, target.id);
  if (route === 'GET /api/v1/users') return; // every user: no one target.
  if (Array.isArray(json.data)) {
    assert.ok(json.data.length > 0);
    for (const row of json.data) assert.equal(row.user_id, target.id);
  }
}

for (const [route, statuses] of MATRIX) {
  describe(route, () => {
    PRINCIPALS.forEach((principal, column) => {
      const status = statuses[column]!;
      test(`${principal.name} → ${status}`, async () => {
        const [method = '', template = ''] = route.split(' ');
        const target = principal.target();
        const ids: Record<string, string> = {
          user_id: target.id,
          deposit_id: target.deposit_id,
          withdrawal_id: target.withdrawal_id,
          endpoint_id: target.endpoint_id,
          delivery_id: target.delivery_id,
          ...(template.includes('{spare_key_id}') ? { spare_key_id: await spareKey(target) } : {}),
          ...(template.includes('{spare_endpoint_id}') ? { spare_endpoint_id: await spareEndpoint(target) } : {}),
        };
        const path = template.replace(/\{(\w+)\}/g, (_, name: string) => ids[name]!);
        const authorization = principal.authorization();
        const answer = await request(method, path, {
          headers: authorization ? { authorization } : {},
          ...(method === 'POST' ? { body: BODIES[template]!(target), idempotencyKey: crypto.randomUUID() } : {}),
        });
        // The spare key goes (if the request left it), so that the target stays under its limit of keys.
        if (ids.spare_key_id)
          await post(`/api/v1/users/${target.id}/api-keys/${ids.spare_key_id}/revoke`, ADMIN_KEY, {});
        assert.equal(answer.status, status, answer.text);
        if (status === 401) assert.equal(answer.headers.get('www-authenticate'), 'Bearer');
        if (status >= 400) assertErrorShape(answer, ERROR_CODES[status]!);
        else await assertConcerns(answer, route, target);
      });
    });
  });
}

// The pool does not fetch array types, so the id lists travel as one comma-separated string.
/** Rows that a request acting on these users (or, for idempotency records, by them) could have written. */
async function written(user_ids: string[], callers: string[]) {
  const [row] = await gateway.sql<{ users: number; transactions: number; journal: number; keys: number }[]>`
    SELECT (SELECT count(*) FROM users)::int AS users,
           (SELECT count(*) FROM transactions WHERE user_id = ANY(string_to_array(${user_ids.join(',')}, ',')::uuid[]))::int AS transactions,
           (SELECT count(*) FROM journal WHERE user_id = ANY(string_to_array(${user_ids.join(',')}, ',')::uuid[]))::int AS journal,
           (SELECT count(*) FROM idempotency_keys WHERE caller = ANY(string_to_array(${callers.join(',')}, ',')))::int AS keys`;
  return row;
}

describe('no mass assignment', () => {
  const SERVER_FIELDS: Record<string, unknown> = {
    id: '0190a0a0-0000-7000-8000-000000000001',
    status: 'succeeded',
    balance: 1_000_000,
    available: 1_000_000,
    held: 0,
    type: 'deposit',
    created_at: '2000-01-01T00:00:00.000Z',
    updated_at: '2000-01-01T00:00:00.000Z',
    completed_at: '2000-01-01T00:00:00.000Z',
    failure: { code: 'bank_declined', message: 'chosen by the client' },
    bank_reference: 'bank-chosen-by-client',
    attempts: 0,
    events: [],
  };

  for (const path of ['/api/v1/deposits', '/api/v1/withdrawals']) {
    test(`${path}: fields the server owns → 400, a user_id of another user → 404; nothing written`, async () => {
      const [mallory, victim] = [await createUser(request, 'Mallory'), await createUser(request, 'Victim')];
      issuedKeys.push(mallory.api_key, victim.api_key);
      const before = await written([mallory.id, victim.id], [mallory.id, victim.id]);
      for (const [field, value] of Object.entries(SERVER_FIELDS)) {
        const answer = await post(path, mallory.api_key, { amount: 100, currency: 'USD', [field]: value });
        assert.equal(answer.status, 400, `${field}: ${answer.text}`);
        assert.equal(answer.json.error, 'validation_error');
        assert.deepEqual(answer.json.details, [{ field, message: 'is not a known field' }]);
      }
      const forVictim = await post(path, mallory.api_key, { amount: 100, currency: 'USD', user_id: victim.id });
      assert.equal(forVictim.status, 404, forVictim.text);
      assertErrorShape(forVictim, 'not_found');
      assert.deepEqual(await written([mallory.id, victim.id], [mallory.id, victim.id]), before);
    });
  }

  test('POST /api/v1/users: an id, key, creation or revocation time, or privileges → 400, no user created', async () => {
    const before = await written([], ['admin']);
    for (const [field, value] of Object.entries({
      id: '0190a0a0-0000-7000-8000-000000000002',
      api_key: 'pgw_chosen_by_the_client_0123456789',
      api_key_hash: 'AAAA',
      created_at: '2000-01-01T00:00:00.000Z',
      revoked_at: null,
      is_admin: true,
      role: 'admin',
      balance: 1_000_000,
    })) {
      const answer = await post('/api/v1/users', ADMIN_KEY, {
        name: 'Mass',
        email: `mass-${crypto.randomUUID()}@example.test`,
        [field]: value,
      });
      assert.equal(answer.status, 400, `${field}: ${answer.text}`);
      assert.equal(answer.json.error, 'validation_error');
    }
    assert.deepEqual(await written([], ['admin']), before);
  });
});

describe('the 401 answer', () => {
  test('is in the contract shape, names the scheme, and says nothing about the key', async () => {
    for (const authorization of [undefined, 'Bearer !!!', 'Basic abc', `Bearer ${unknownKey}`]) {
      const answer = await request('GET', `/api/v1/users/${owner.id}`, {
        headers: authorization ? { authorization, 'x-request-id': 'client-chosen-id-401' } : {},
      });
      assert.equal(answer.status, 401);
      assertErrorShape(answer, 'unauthenticated');
      assert.equal(answer.headers.get('www-authenticate'), 'Bearer');
      assert.ok(!answer.text.includes(unknownKey) && !answer.text.includes('!!!') && !answer.text.includes('abc'));
    }
  });
});

// Runs last: it reads the log lines of every request this file made.
describe('the logs', () => {
  test('no API key and no Authorization header appear in any log line', async () => {
    for (const key of [ADMIN_KEY, owner.api_key, revoked.api_key, unknownKey]) {
      await request('GET', `/api/v1/users/${owner.id}/balance`, { key });
      await post('/api/v1/deposits', key, { amount: 0, currency: 'USD' });
    }
    await new Promise((resolve) => setImmediate(resolve));
    const lines = log.lines();
    assert.ok(lines.filter((line) => line.msg === 'request').length > 100, 'the access log was captured');
    const text = lines.map((line) => JSON.stringify(line)).join('\n');
    assert.ok(issuedKeys.length > 5);
    for (const key of [ADMIN_KEY, unknownKey, ...issuedKeys]) assert.ok(!text.includes(key), 'a key was logged');
    assert.doesNotMatch(text, /Bearer|Basic abc/);
  });
});
