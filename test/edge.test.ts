import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';

let gateway: Gateway;
let request: ReturnType<typeof client>;

before(async () => {
  gateway = await startTestGateway({ BODY_SIZE_MAX_BYTES: '2048' });
  request = client(gateway.url);
});
after(() => gateway.close());

function assertErrorShape(body: any, code: string): void {
  assert.equal(body.error, code);
  assert.equal(typeof body.message, 'string');
  assert.match(body.request_id, /^[0-9a-f-]{36}$/);
}

describe('errors come in the contract shape', () => {
  test('unknown route → 404', async () => {
    const answer = await request('GET', '/api/v1/nothing-here');
    assert.equal(answer.status, 404);
    assertErrorShape(answer.json, 'not_found');
    assert.equal(answer.json.request_id, answer.headers.get('x-request-id'));
  });

  test('wrong method on a known route → 405 with Allow', async () => {
    const answer = await request('DELETE', '/health');
    assert.equal(answer.status, 405);
    assertErrorShape(answer.json, 'method_not_allowed');
    assert.match(answer.headers.get('allow') ?? '', /GET/);
  });

  test('malformed JSON → 400', async () => {
    const answer = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      raw: '{"name": "x",',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'k-malformed' },
    });
    assert.equal(answer.status, 400);
    assertErrorShape(answer.json, 'malformed_json');
  });

  test('a body over the configured size → 413', async () => {
    const answer = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { name: 'x'.repeat(4000), email: 'big@example.test' },
      idempotencyKey: 'k-big',
    });
    assert.equal(answer.status, 413);
    assertErrorShape(answer.json, 'payload_too_large');
  });

  test('a body that is not JSON → 415', async () => {
    const answer = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      raw: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'k-form' },
    });
    assert.equal(answer.status, 415);
    assertErrorShape(answer.json, 'unsupported_media_type');
  });

  test('an invalid field → 400 naming it', async () => {
    const answer = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { name: 'x', email: 'not-an-email' },
      idempotencyKey: 'k-invalid',
    });
    assert.equal(answer.status, 400);
    assertErrorShape(answer.json, 'validation_error');
    assert.equal(answer.json.details[0].field, 'email');
  });

  test('fields a client may not set are refused (no mass assignment)', async () => {
    const answer = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { name: 'x', email: 'mass@example.test', id: crypto.randomUUID(), api_key: 'pgw_chosen_by_me_123' },
      idempotencyKey: 'k-mass',
    });
    assert.equal(answer.status, 400);
    assertErrorShape(answer.json, 'validation_error');
  });
});

describe('what Node refuses before Koa', () => {
  async function raw(text: string): Promise<string> {
    const { connect } = await import('node:net');
    const { port } = new URL(gateway.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(text));
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString()));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
  }

  test('a control character in a header → 400 in the contract shape, with a request id', async () => {
    const answer = await raw('GET /health HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x01b\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    assertErrorShape(body, 'malformed_request');
    assert.match(answer, new RegExp(`X-Request-ID: ${body.request_id}`));
  });

  test('headers over the limit → 431 in the contract shape', async () => {
    const answer = await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assertErrorShape(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), 'headers_too_large');
  });
});

describe('request ids', () => {
  test('a valid client id is echoed', async () => {
    const answer = await request('GET', '/health', { headers: { 'x-request-id': 'client-id-12345' } });
    assert.equal(answer.headers.get('x-request-id'), 'client-id-12345');
  });

  test('an unsafe client id is replaced by a UUID', async () => {
    const answer = await request('GET', '/health', { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(answer.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });
});

describe('health', () => {
  test('200 with every check ok', async () => {
    const answer = await request('GET', '/health');
    assert.equal(answer.status, 200);
    assert.equal(answer.json.status, 'ok');
    assert.equal(answer.json.checks.postgres, 'ok');
    assert.equal(answer.json.checks.redis, 'ok');
  });

  test('503 naming Postgres when it is unreachable', async () => {
    const broken = await startTestGateway({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      HEALTH_TIMEOUT_MS: '500',
    });
    try {
      const answer = await client(broken.url)('GET', '/health');
      assert.equal(answer.status, 503);
      assert.equal(answer.json.checks.postgres, 'unavailable');
      assert.equal(answer.json.checks.redis, 'ok');
      assert.match(answer.json.message, /postgres/);
    } finally {
      await broken.close();
    }
  });

  test('503 naming Redis when it is unreachable', async () => {
    const broken = await startTestGateway({ REDIS_URL: 'redis://127.0.0.1:1', HEALTH_TIMEOUT_MS: '500' });
    try {
      const answer = await client(broken.url)('GET', '/health');
      assert.equal(answer.status, 503);
      assert.equal(answer.json.checks.redis, 'unavailable');
      assert.equal(answer.json.checks.postgres, 'ok');
    } finally {
      await broken.close();
    }
  });
});

describe('users and auth', () => {
  test('the admin creates a user and sees the key once; the owner reads it without the key', async () => {
    const user = await createUser(request, 'Ada');
    assert.match(user.api_key, /^pgw_[A-Za-z0-9_-]{43}$/);
    const own = await request('GET', `/api/v1/users/${user.id}`, { key: user.api_key });
    assert.equal(own.status, 200);
    assert.equal(own.json.id, user.id);
    assert.equal(own.json.api_key, undefined);
    const stored = await gateway.sql`SELECT key_hash, prefix FROM api_keys WHERE user_id = ${user.id}`;
    assert.equal(stored.length, 1);
    assert.equal(stored[0]?.key_hash.length, 32);
    assert.equal(stored[0]?.prefix, user.api_key.slice(0, 12));
    assert.ok(!JSON.stringify(stored).includes(user.api_key));
  });

  test('another user gets 404, the admin gets the user, nobody gets 401', async () => {
    const [alice, bob] = [await createUser(request, 'Alice'), await createUser(request, 'Bob')];
    assert.equal((await request('GET', `/api/v1/users/${alice.id}`, { key: bob.api_key })).status, 404);
    assert.equal((await request('GET', `/api/v1/users/${alice.id}`, { key: ADMIN_KEY })).status, 200);
    const anonymous = await request('GET', `/api/v1/users/${alice.id}`);
    assert.equal(anonymous.status, 401);
    assertErrorShape(anonymous.json, 'unauthenticated');
  });

  test('unknown, malformed and revoked keys get 401', async () => {
    const user = await createUser(request, 'Revoked');
    for (const key of ['pgw_unknownunknownunknown', 'bad key!', 'x']) {
      const answer = await request('GET', `/api/v1/users/${user.id}`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(answer.status, 401, key);
    }
    await gateway.sql`UPDATE users SET revoked_at = now() WHERE id = ${user.id}`;
    assert.equal((await request('GET', `/api/v1/users/${user.id}`, { key: user.api_key })).status, 401);
  });

  test('only the admin creates users', async () => {
    const user = await createUser(request, 'Plain');
    const answer = await request('POST', '/api/v1/users', {
      key: user.api_key,
      body: { name: 'x', email: 'x@example.test' },
      idempotencyKey: 'k-user-creates',
    });
    assert.equal(answer.status, 403);
  });

  test('a user id that is not a UUID → 400', async () => {
    const answer = await request('GET', '/api/v1/users/not-a-uuid', { key: ADMIN_KEY });
    assert.equal(answer.status, 400);
    assertErrorShape(answer.json, 'validation_error');
  });

  test('a taken email → 409', async () => {
    const email = `twice-${crypto.randomUUID()}@example.test`;
    const first = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { name: 'a', email },
      idempotencyKey: crypto.randomUUID(),
    });
    const second = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { name: 'b', email: email.toUpperCase() },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(first.status, 201);
    assert.equal(second.status, 409);
    assertErrorShape(second.json, 'email_taken');
  });

  test('creating a user needs an Idempotency-Key; a replay returns the user without the key', async () => {
    const body = { name: 'Once', email: `once-${crypto.randomUUID()}@example.test` };
    const missing = await request('POST', '/api/v1/users', { key: ADMIN_KEY, body });
    assert.equal(missing.status, 400);
    assertErrorShape(missing.json, 'idempotency_key_required');
    const idempotencyKey = crypto.randomUUID();
    const first = await request('POST', '/api/v1/users', { key: ADMIN_KEY, body, idempotencyKey });
    const again = await request('POST', '/api/v1/users', { key: ADMIN_KEY, body, idempotencyKey });
    assert.equal(again.status, 201);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(again.json.id, first.json.id);
    assert.equal(again.json.api_key, null);
    const reused = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { ...body, name: 'Other' },
      idempotencyKey,
    });
    assert.equal(reused.status, 422);
    assertErrorShape(reused.json, 'idempotency_key_reused');
  });
});
