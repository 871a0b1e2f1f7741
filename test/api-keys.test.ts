import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { eventually, scaled } from './support/time.ts';

// API keys: a user adds a second key, switches over, and revokes the first (a rotation), through the
// API, as the user or the admin. Two gateways of one cluster with a short key cache: a key revoked
// through one stops working there at once and on the other once its cache entry expires.

const AUTH_CACHE_TTL_MS = 1000;
let a: Gateway;
let b: Gateway;
let viaA: ReturnType<typeof client>;
let viaB: ReturnType<typeof client>;

before(async () => {
  const shared = {
    REDIS_KEY_PREFIX: `pgw-test-keys-${process.pid}-${crypto.randomUUID()}:`,
    AUTH_CACHE_TTL_MS: String(AUTH_CACHE_TTL_MS),
  };
  a = await startTestGateway({ ...shared, INSTANCE_ID: `keys-a-${process.pid}` });
  b = await startTestGateway({ ...shared, INSTANCE_ID: `keys-b-${process.pid}` });
  viaA = client(a.url);
  viaB = client(b.url);
});
after(async () => {
  await a?.close();
  await b?.close();
});

const post = (path: string, key: string, body?: unknown, idempotencyKey: string = crypto.randomUUID()) =>
  viaA('POST', path, { key, idempotencyKey, ...(body !== undefined ? { body } : {}) });

/** Who a key authenticates as on one gateway: the user's id, or the status it got instead. */
async function whoIs(request: ReturnType<typeof client>, key: string): Promise<string | number> {
  const answer = await request('GET', '/api/v1/me', { key });
  return answer.status === 200 ? (answer.json.id as string) : answer.status;
}

async function keysOf(user_id: string) {
  return a.sql<{ id: string; revoked_at: Date | null }[]>`
    SELECT id, revoked_at FROM api_keys WHERE user_id = ${user_id} ORDER BY created_at, id`;
}

describe('a rotation', () => {
  test('the user adds a key, both work, the old one is revoked and stops at once; a third is refused', async () => {
    const user = await createUser(viaA, 'Rotating');
    const [first] = (await viaA('GET', `/api/v1/users/${user.id}/api-keys`, { key: user.api_key })).json.data;
    assert.equal(first.prefix, user.api_key.slice(0, 12));
    assert.equal(first.revoked_at, null);

    const added = await post(`/api/v1/users/${user.id}/api-keys`, user.api_key, { label: 'new deploy' });
    assert.equal(added.status, 201, added.text);
    assert.match(added.json.api_key, /^pgw_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(Object.keys(added.json).sort(), [
      'api_key',
      'created_at',
      'id',
      'label',
      'prefix',
      'revoked_at',
      'user_id',
    ]);
    assert.equal(added.json.label, 'new deploy');
    assert.equal(added.json.prefix, added.json.api_key.slice(0, 12));
    assert.equal(await whoIs(viaA, user.api_key), user.id);
    assert.equal(await whoIs(viaA, added.json.api_key), user.id);

    const third = await post(`/api/v1/users/${user.id}/api-keys`, user.api_key, {});
    assert.equal(third.status, 409, third.text);
    assert.equal(third.json.error, 'too_many_api_keys');
    assert.equal((await keysOf(user.id)).length, 2, 'the refused key was not written');

    const revoked = await post(`/api/v1/users/${user.id}/api-keys/${first.id}/revoke`, added.json.api_key);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.json.id, first.id);
    assert.ok(Date.parse(revoked.json.revoked_at) > 0);
    assert.equal(await whoIs(viaA, user.api_key), 401, 'the instance that revoked it refuses it at once');
    assert.equal(await whoIs(viaA, added.json.api_key), user.id);

    const listed = (await viaA('GET', `/api/v1/users/${user.id}/api-keys`, { key: added.json.api_key })).json.data;
    assert.deepEqual(
      listed.map((key: { id: string; revoked_at: string | null }) => [key.id, key.revoked_at !== null]),
      [
        [first.id, true],
        [added.json.id, false],
      ],
    );
    assert.ok(!JSON.stringify(listed).includes(added.json.api_key), 'a list never shows a key');

    const again = await post(`/api/v1/users/${user.id}/api-keys`, added.json.api_key);
    assert.equal(again.status, 201, 'with one key revoked, a second can be added (no body needed)');
    assert.equal(again.json.label, null);
  });

  test('a replay answers the same key without the secret and adds nothing; revoking twice keeps the first time', async () => {
    const user = await createUser(viaA, 'Replay');
    const idempotencyKey = crypto.randomUUID();
    const path = `/api/v1/users/${user.id}/api-keys`;
    const first = await post(path, user.api_key, { label: 'once' }, idempotencyKey);
    const replay = await post(path, user.api_key, { label: 'once' }, idempotencyKey);
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(replay.json, { ...first.json, api_key: null });
    const reused = await post(path, user.api_key, { label: 'other' }, idempotencyKey);
    assert.equal(reused.status, 422, reused.text);
    assert.equal((await keysOf(user.id)).length, 2);

    const revoke = `${path}/${first.json.id}/revoke`;
    const once = await post(revoke, ADMIN_KEY);
    const twice = await post(revoke, ADMIN_KEY);
    assert.equal(twice.status, 200);
    assert.equal(twice.json.revoked_at, once.json.revoked_at);
  });

  test('the admin rotates a user key; another user reaches none of it (404) and nothing changes', async () => {
    const [owner, other] = [await createUser(viaA, 'Owner'), await createUser(viaA, 'Other')];
    const before = await keysOf(owner.id);
    const [ownerKey] = before;
    for (const [method, path] of [
      ['GET', `/api/v1/users/${owner.id}/api-keys`],
      ['POST', `/api/v1/users/${owner.id}/api-keys`],
      ['POST', `/api/v1/users/${owner.id}/api-keys/${ownerKey!.id}/revoke`],
      // The other user's own path, naming the owner's key.
      ['POST', `/api/v1/users/${other.id}/api-keys/${ownerKey!.id}/revoke`],
    ] as const) {
      const answer =
        method === 'GET' ? await viaA('GET', path, { key: other.api_key }) : await post(path, other.api_key, {});
      assert.equal(answer.status, 404, `${method} ${path}: ${answer.text}`);
      assert.equal(answer.json.error, 'not_found');
    }
    assert.deepEqual(await keysOf(owner.id), before);

    const added = await post(`/api/v1/users/${owner.id}/api-keys`, ADMIN_KEY, { label: 'by the admin' });
    assert.equal(added.status, 201, added.text);
    const revoked = await post(`/api/v1/users/${owner.id}/api-keys/${ownerKey!.id}/revoke`, ADMIN_KEY);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(await whoIs(viaA, owner.api_key), 401);
    assert.equal(await whoIs(viaA, added.json.api_key), owner.id);
  });

  test('bad input is a 400 that changes nothing', async () => {
    const user = await createUser(viaA, 'Bad input');
    const before = await keysOf(user.id);
    const path = `/api/v1/users/${user.id}/api-keys`;
    for (const body of [
      { label: '' },
      { label: 'x'.repeat(101) },
      { label: 7 },
      { key_hash: 'AAAA' },
      { api_key: 'pgw_mine' },
    ]) {
      const answer = await post(path, user.api_key, body);
      assert.equal(answer.status, 400, `${JSON.stringify(body)}: ${answer.text}`);
      assert.equal(answer.json.error, 'validation_error');
    }
    const notUuid = await post(`${path}/not-a-uuid/revoke`, user.api_key);
    assert.equal(notUuid.status, 400);
    assert.deepEqual(notUuid.json.details, [{ field: 'key_id', message: 'must be a UUID' }]);
    const noKey = await viaA('POST', path, { key: user.api_key, body: {} });
    assert.equal(noKey.status, 400);
    assert.equal(noKey.json.error, 'idempotency_key_required');
    const unknown = await post(`${path}/${crypto.randomUUID()}/revoke`, user.api_key);
    assert.equal(unknown.status, 404);
    assert.deepEqual(await keysOf(user.id), before);
  });
});

test('a key revoked through one instance stops working on the other within AUTH_CACHE_TTL_MS', async () => {
  const user = await createUser(viaA, 'Two instances');
  const [key] = await keysOf(user.id);
  // The other instance has the key in its cache: without the TTL it would go on trusting it.
  assert.equal(await whoIs(viaB, user.api_key), user.id);
  const revoked = await post(`/api/v1/users/${user.id}/api-keys/${key!.id}/revoke`, ADMIN_KEY);
  assert.equal(revoked.status, 200, revoked.text);
  const revokedAt = Date.now();
  assert.equal(await whoIs(viaA, user.api_key), 401);
  await eventually(async () => ((await whoIs(viaB, user.api_key)) === 401 ? true : undefined));
  const took = Date.now() - revokedAt;
  // The entry expires TTL after the query that filled it, which ran before the revocation.
  assert.ok(took <= AUTH_CACHE_TTL_MS + scaled(1000), `refused after ${took} ms`);
  assert.equal(await whoIs(viaB, user.api_key), 401, 'and stays refused');
});

describe('finding users (admin)', () => {
  test('by email, name or id, case-insensitively, in keyset pages; a user is refused', async () => {
    const tag = crypto.randomUUID().slice(0, 8);
    const made = [];
    for (const [i, name] of ['Grace', 'Grace', 'Linus'].entries()) {
      const email = `${name.toLowerCase()}${i}.${tag}@Example.test`;
      const answer = await viaA('POST', '/api/v1/users', {
        key: ADMIN_KEY,
        body: { name: `${name} ${tag}`, email },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(answer.status, 201, answer.text);
      made.push(answer.json);
    }
    const find = async (query: string, key = ADMIN_KEY) => viaA('GET', `/api/v1/users?${query}`, { key });

    const byEmail = await find(`search=${encodeURIComponent(`LINUS2.${tag}@example`)}`);
    assert.equal(byEmail.status, 200, byEmail.text);
    assert.deepEqual(
      byEmail.json.data.map((u: { id: string }) => u.id),
      [made[2].id],
    );
    assert.equal(byEmail.json.data[0].api_keys_active, 1);
    assert.equal(byEmail.json.data[0].api_key, undefined);

    const byId = await find(`search=${made[0].id.toUpperCase()}`);
    assert.deepEqual(
      byId.json.data.map((u: { id: string }) => u.id),
      [made[0].id],
    );

    // Both Graces, newest first, one per page.
    const page1 = await find(`search=grace%20${tag}&limit=1`);
    assert.equal(page1.json.has_more, true);
    const page2 = await find(`search=grace%20${tag}&limit=1&cursor=${page1.json.next_cursor}`);
    assert.equal(page2.json.has_more, false);
    assert.deepEqual(
      [...page1.json.data, ...page2.json.data].map((u: { id: string }) => u.id),
      [made[1].id, made[0].id],
    );

    // `%` and `_` are text, not patterns.
    assert.deepEqual((await find(`search=${encodeURIComponent(`%${tag}_%`)}`)).json.data, []);
    const bad = await find('search=x&limit=0');
    assert.equal(bad.status, 400);
    const unknown = await find('name=x');
    assert.deepEqual(unknown.json.details, [{ field: 'name', message: 'is not a known field' }]);
    const asUser = await find('search=x', made[0].api_key);
    assert.equal(asUser.status, 403);
  });
});
