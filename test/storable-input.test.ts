import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Context } from 'koa';
import type { Gateway } from '../gateway.ts';
import { idempotencyKey } from '../http/idempotency.ts';
import { requestId } from '../http/request-id.ts';
import { signedCallback } from './support/bank.ts';
import { ADMIN_KEY, client, createUser, startTestGateway, type Answer } from './support/gateway.ts';

// Text that Postgres cannot hold (U+0000 anywhere, an unpaired UTF-16 surrogate in jsonb) used to reach
// it and come back as a 5xx, sometimes after the money had moved. Each case here is refused at the
// edge as 400 `validation_error` naming the field, and leaves nothing behind.

let gateway: Gateway;
let request: ReturnType<typeof client>;
let user: { id: string; api_key: string };

before(async () => {
  gateway = await startTestGateway();
  request = client(gateway.url);
  user = await createUser(request, 'Storable');
});
after(() => gateway.close());

function assertRefused(answer: Answer, field: string): void {
  assert.equal(answer.status, 400, answer.text);
  assert.equal(answer.json.error, 'validation_error');
  assert.equal(answer.json.request_id, answer.headers.get('x-request-id'));
  const fields = (answer.json.details as { field: string; message: string }[]).map((detail) => detail.field);
  assert.ok(fields.includes(field), `expected ${field} among ${fields.join(', ')}`);
}

async function transactionCount(): Promise<number> {
  const [row] = await gateway.sql<
    { n: number }[]
  >`SELECT count(*)::int AS n FROM transactions WHERE user_id = ${user.id}`;
  return row!.n;
}

/** Posts a raw JSON body (so that keys such as `__proto__` survive) as a deposit of `user`. */
function deposit(raw: string, idempotencyKey = crypto.randomUUID()): Promise<Answer> {
  return request('POST', '/api/v1/deposits', {
    key: user.api_key,
    raw,
    headers: { 'content-type': 'application/json' },
    idempotencyKey,
  });
}

describe('deposits and withdrawals', () => {
  test('a NUL in the description → 400, and again for the same key (nothing was stored)', async () => {
    const before = await transactionCount();
    const key = crypto.randomUUID();
    const body = '{"amount":100,"currency":"USD","description":"a\\u0000b"}';
    assertRefused(await deposit(body, key), 'description');
    assertRefused(await deposit(body, key), 'description');
    assert.equal(await transactionCount(), before);
  });

  test('a lone surrogate in the description → 400', async () => {
    for (const text of ['\\ud800', 'a\\udc00b', '\\udbff\\ud800']) {
      assertRefused(await deposit(`{"amount":100,"currency":"USD","description":"${text}"}`), 'description');
    }
  });

  test('a NUL or a lone surrogate in a metadata key or value → 400 naming it', async () => {
    const before = await transactionCount();
    assertRefused(await deposit('{"amount":100,"currency":"USD","metadata":{"k":"a\\u0000"}}'), 'metadata.k');
    assertRefused(await deposit('{"amount":100,"currency":"USD","metadata":{"k":"\\udfff"}}'), 'metadata.k');
    assertRefused(await deposit('{"amount":100,"currency":"USD","metadata":{"a\\u0000":"v"}}'), 'metadata.a\u0000');
    assertRefused(await deposit('{"amount":100,"currency":"USD","metadata":{"\\ud800":"v"}}'), 'metadata.\ud800');
    const withdrawal = await request('POST', '/api/v1/withdrawals', {
      key: user.api_key,
      raw: '{"amount":1,"currency":"USD","metadata":{"k":"\\u0000"}}',
      headers: { 'content-type': 'application/json' },
      idempotencyKey: crypto.randomUUID(),
    });
    assertRefused(withdrawal, 'metadata.k');
    assert.equal(await transactionCount(), before);
  });

  test('__proto__, constructor and prototype as metadata keys → 400, not silently dropped', async () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      for (const value of ['"x"', '{"polluted":"yes"}']) {
        const answer = await deposit(`{"amount":100,"currency":"USD","metadata":{"ok":"1","${key}":${value}}}`);
        assertRefused(answer, `metadata.${key}`);
        assert.match(answer.json.details[0].message, /reserved/);
      }
    }
  });

  test('text Postgres can hold is kept as sent, pairs of surrogates included', async () => {
    const description = 'café 🙂 \u2028 \t ✓';
    const answer = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 100, currency: 'USD', description, metadata: { 'clé 🙂': 'valeur 🙂', proto: '__proto__' } },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(answer.status, 202, answer.text);
    const shown = await request('GET', `/api/v1/deposits/${answer.json.id}`, { key: user.api_key });
    assert.equal(shown.json.description, description);
    assert.deepEqual(shown.json.metadata, { 'clé 🙂': 'valeur 🙂', proto: '__proto__' });
  });
});

describe('users', () => {
  const create = (raw: string) =>
    request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      raw,
      headers: { 'content-type': 'application/json' },
      idempotencyKey: crypto.randomUUID(),
    });

  test('a NUL or a lone surrogate in the name or the email → 400 naming it', async () => {
    const email = () => `storable-${crypto.randomUUID()}@example.test`;
    assertRefused(await create(`{"name":"a\\u0000b","email":"${email()}"}`), 'name');
    assertRefused(await create(`{"name":"a\\ud800","email":"${email()}"}`), 'name');
    assertRefused(await create(`{"name":"ok","email":"a\\u0000${email()}"}`), 'email');
    assertRefused(await create(`{"name":"ok","email":"\\udc00${email()}"}`), 'email');
  });
});

describe('the bank callback', () => {
  async function pendingDeposit(): Promise<string> {
    const answer = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 500, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(answer.status, 202, answer.text);
    return answer.json.id as string;
  }

  const post = (callback: { headers: Record<string, string>; raw: string }) =>
    request('POST', '/webhooks/bank-callback', { raw: callback.raw, headers: callback.headers });

  async function assertUntouched(id: string): Promise<void> {
    const shown = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
    assert.ok(['pending', 'processing'].includes(shown.json.status), shown.text);
    const [row] = await gateway.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM webhook_inbox WHERE reference = ${id}`;
    assert.equal(row!.n, 0);
  }

  test('a signed callback whose webhook-id is over 255 characters → 400 before anything is applied', async () => {
    const id = await pendingDeposit();
    const payload = { type: 'transfer.succeeded', data: { reference: id, bank_reference: 'b-1', status: 'succeeded' } };
    const answer = await post(signedCallback(payload, { id: `msg_${'x'.repeat(252)}` }));
    assertRefused(answer, 'webhook-id');
    await assertUntouched(id);
    const fits = await post(signedCallback(payload, { id: `msg_${'x'.repeat(251)}` }));
    assert.equal(fits.status, 200, fits.text);
    assert.equal(fits.json.status, 'applied');
  });

  test('a NUL or a lone surrogate in a signed callback’s strings → 400 before anything is applied', async () => {
    const id = await pendingDeposit();
    const failed = (fields: string) =>
      signedCallback(
        JSON.parse(`{"type":"transfer.failed","data":{"reference":"${id}","status":"failed",${fields}}}`) as Record<
          string,
          unknown
        >,
      );
    // signedCallback re-serialises with JSON.stringify, which writes NUL and lone surrogates as escapes.
    assertRefused(await post(failed('"bank_reference":"b\\u0000","failure_code":"x"')), 'data.bank_reference');
    assertRefused(await post(failed('"bank_reference":"b","failure_code":"\\ud800"')), 'data.failure_code');
    assertRefused(
      await post(failed('"bank_reference":"b","failure_code":"x","failure_message":"no\\u0000"')),
      'data.failure_message',
    );
    await assertUntouched(id);
  });
});

describe('headers', () => {
  function raw(text: string): Promise<string> {
    const { port } = new URL(gateway.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(text));
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
  }

  test('a NUL in the Idempotency-Key or the X-Request-ID → 400 from Node’s parser, never a 5xx', async () => {
    const body = '{"amount":100,"currency":"USD"}';
    for (const header of [
      'Idempotency-Key: a\x00b',
      `Idempotency-Key: ${crypto.randomUUID()}\r\nX-Request-ID: abcdefgh\x00ij`,
    ]) {
      const answer = await raw(
        `POST /api/v1/deposits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.api_key}\r\n${header}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      assert.match(answer, /^HTTP\/1\.1 400 /, answer);
      assert.match(answer, /"error":"malformed_request"/);
    }
  });

  test('should a NUL get past the parser, the Idempotency-Key is invalid and the request id replaced', async () => {
    const headers = { 'idempotency-key': 'a\u0000b', 'x-request-id': 'abcdefgh\u0000ij' };
    const ctx = {
      req: { headers },
      get: (name: string) => headers[name.toLowerCase() as keyof typeof headers] ?? '',
      state: {} as Record<string, string>,
      set: () => {},
    } as unknown as Context;
    assert.throws(() => idempotencyKey(ctx), { status: 400, code: 'idempotency_key_invalid' });
    await requestId()(ctx, () => Promise.resolve());
    assert.match(ctx.state.requestId, /^[0-9a-f-]{36}$/);
  });
});
