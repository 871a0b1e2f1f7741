import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { createRedis } from '../persistence/redis.ts';
import { signedCallback } from './support/bank.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';

// Failed authentications are counted per client address on every path, the bank's callback included:
// a wrong API key anywhere and a refused webhook signature alike. Each test calls from a loopback
// address of its own (127.0.0.x), so that the tests' counts stay apart, and so does "another address".

const LIMIT = 3;
const KEY_PREFIX = `pgw-test-${process.pid}-${crypto.randomUUID()}:`;
const WRONG_KEY = 'pgw_wrong_key_0123456789';
const OTHER_SECRET = 'whsec_b3RoZXItc2VjcmV0';

let gateway: Gateway;
let user: { id: string; api_key: string };

before(async () => {
  gateway = await startTestGateway({ RATE_LIMIT_AUTH_FAILURES_PER_MIN: String(LIMIT), REDIS_KEY_PREFIX: KEY_PREFIX });
  user = await createUser(client(gateway.url), 'Limited');
});
after(async () => {
  await gateway.close();
  // The counters would expire within a minute; the file leaves nothing behind all the same.
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', 'auth-failures-test');
  try {
    await once(redis, 'ready');
    const keys = await redis.keys(`${KEY_PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  json: any;
}

/** One request on its own connection from the loopback address `from`. */
function call(
  from: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = httpRequest(
      gateway.url + path,
      { method, agent: false, localAddress: from, headers: options.headers ?? {} },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, json: text ? JSON.parse(text) : {} }),
        );
      },
    );
    sent.on('error', reject);
    sent.end(options.body);
  });
}

const callback = (from: string, signed: { headers: Record<string, string>; raw: string }, extra = {}) =>
  call(from, 'POST', '/webhooks/bank-callback', { headers: { ...signed.headers, ...extra }, body: signed.raw });

function assertRateLimited(answer: Answer): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.json));
  const retryAfter = Number(answer.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.deepEqual(answer.json, {
    error: 'rate_limit_exceeded',
    message: 'Too many requests. Please try again later.',
    retry_after: retryAfter,
    request_id: answer.headers['x-request-id'],
  });
  assert.equal(answer.headers['ratelimit-policy'], `"auth_failures";q=${LIMIT};w=60`);
}

async function pendingDeposit(): Promise<string> {
  const answer = await client(gateway.url)('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount: 700, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json.id as string;
}

const succeeded = (reference: string) => ({
  type: 'transfer.succeeded',
  data: { reference, bank_reference: 'bank-ref', status: 'succeeded' },
});

async function statusOf(id: string): Promise<string> {
  const shown = await call('127.0.0.1', 'GET', `/api/v1/deposits/${id}`, {
    headers: { authorization: `Bearer ${user.api_key}` },
  });
  return shown.json.status as string;
}

test('a wrong API key on the webhook path counts; past the limit the address is refused everywhere', async () => {
  const wrong = { authorization: `Bearer ${WRONG_KEY}`, 'content-type': 'application/json' };
  for (let i = 0; i < LIMIT; i += 1) {
    const answer = await call('127.0.0.11', 'POST', '/webhooks/bank-callback', { headers: wrong, body: '{}' });
    assert.equal(answer.status, 401);
    assert.equal(answer.json.error, 'unauthenticated');
  }
  const me = { authorization: `Bearer ${user.api_key}` };
  assertRateLimited(await call('127.0.0.11', 'GET', '/api/v1/me', { headers: me }));
  assertRateLimited(await call('127.0.0.11', 'POST', '/webhooks/bank-callback', { headers: wrong, body: '{}' }));
  assert.equal((await call('127.0.0.12', 'GET', '/api/v1/me', { headers: me })).status, 200);
});

test('bad webhook signatures: past the limit 429 before the signature is checked; the bank is not limited', async () => {
  const id = await pendingDeposit();
  for (let i = 0; i < LIMIT; i += 1) {
    const refused = await callback('127.0.0.13', signedCallback(succeeded(id), { secret: OTHER_SECRET }));
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error, 'invalid_signature');
  }
  // Even a valid signature from that address is not looked at now, and nothing is applied.
  assertRateLimited(await callback('127.0.0.13', signedCallback(succeeded(id))));
  assert.notEqual(await statusOf(id), 'succeeded');
  // The bank, calling from an address of its own, is not limited by another address's failures.
  const applied = await callback('127.0.0.14', signedCallback(succeeded(id)));
  assert.equal(applied.status, 200);
  assert.equal(applied.json.status, 'applied');
  assert.equal(await statusOf(id), 'succeeded');
});

test("a peer's old forwarding header from a client exempts nothing: its failures count like any other", async () => {
  // Instances forward to each other as signed commands on an internal path, answered before this
  // limit runs (test/forward.test.ts); a public request carrying the header that forwarding once used,
  // even correctly signed, is an ordinary request, and its failures count.
  const cluster = createHash('sha256').update(`pgw-forward:${ADMIN_KEY}`).digest();
  const forwarded = (path: string) => {
    const request_id = `forwarded-${crypto.randomUUID()}`;
    const at_s = Math.floor(Date.now() / 1000);
    const mac = createHmac('sha256', cluster)
      .update(['peer-instance', String(at_s), 'POST', path, request_id].join('\n'))
      .digest('base64url');
    return { 'x-request-id': request_id, 'x-gateway-forwarded': `peer-instance ${at_s} ${mac}` };
  };
  const id = await pendingDeposit();
  for (let i = 0; i < LIMIT; i += 1) {
    const bad = signedCallback(succeeded(id), { secret: OTHER_SECRET });
    const answer = await callback('127.0.0.15', bad, forwarded('/webhooks/bank-callback'));
    assert.equal(answer.status, 401);
  }
  const me = { authorization: `Bearer ${user.api_key}` };
  assertRateLimited(await call('127.0.0.15', 'GET', '/api/v1/me', { headers: me }));
});
