import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { verifyWebhook } from './webhook-signature.ts';

const secretA = `whsec_${Buffer.from('secret-a: the current one').toString('base64')}`;
const secretB = `whsec_${Buffer.from('secret-b: the next one').toString('base64')}`;
const now_s = 1_800_000_000;
const id = 'msg_2b6a5c1e';
const body = Buffer.from('{"type":"transfer.succeeded","data":{"reference":"r-1","status":"succeeded"}}');

// Signatures are made with the standardwebhooks package, so every case also cross-checks the two.
function signed(options: { secret?: string; timestamp_s?: number; payload?: Buffer } = {}) {
  const timestamp_s = options.timestamp_s ?? now_s;
  const signature = new Webhook(options.secret ?? secretA).sign(
    id,
    new Date(timestamp_s * 1000),
    (options.payload ?? body).toString(),
  );
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp_s), 'webhook-signature': signature };
}

function verify(headers: Record<string, string | undefined>, options: { secrets?: string[]; rawBody?: Buffer } = {}) {
  return verifyWebhook({ headers, rawBody: options.rawBody ?? body, secrets: options.secrets ?? [secretA], now_s });
}

const refused = (reason: string) => ({ ok: false, reason });

test('the Standard Webhooks reference vector verifies', () => {
  const result = verifyWebhook({
    headers: {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    },
    rawBody: Buffer.from('{"test": 2432232314}'),
    secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    now_s: 1614265330,
  });
  assert.deepEqual(result, { ok: true, id: 'msg_p5jXN8AQM9LWM0D4loKWxJek', timestamp_s: 1614265330 });
});

test('a valid signature is accepted, whatever the case of the header names', () => {
  assert.deepEqual(verify(signed()), { ok: true, id, timestamp_s: now_s });
  const headers = signed();
  const mixed = {
    'Webhook-Id': headers['webhook-id'],
    'Webhook-Timestamp': headers['webhook-timestamp'],
    'Webhook-Signature': headers['webhook-signature'],
  };
  assert.deepEqual(verify(mixed), { ok: true, id, timestamp_s: now_s });
});

for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
  test(`a missing or empty ${name} header is refused`, () => {
    assert.deepEqual(verify({ ...signed(), [name]: undefined }), refused('missing_headers'));
    assert.deepEqual(verify({ ...signed(), [name]: '' }), refused('missing_headers'));
  });
}

test('a wrong, truncated or unknown-scheme signature is refused', () => {
  const valid = signed()['webhook-signature'].slice(3);
  const other = signed({ payload: Buffer.from('{}') })['webhook-signature'];
  for (const signature of [other, 'v1,', 'v1', `v1,${valid.slice(0, -4)}`, `v2,${valid}`, `v1a,${valid}`, 'garbage']) {
    assert.deepEqual(verify({ ...signed(), 'webhook-signature': signature }), refused('bad_signature'), signature);
  }
});

test('an unknown scheme beside a valid v1 signature, or several v1 with one valid, is accepted', () => {
  const valid = signed()['webhook-signature'];
  const other = signed({ payload: Buffer.from('{}') })['webhook-signature'];
  for (const signature of [
    `v1a,bm90IGEgc2lnbmF0dXJl ${valid}`,
    `${valid} v2,abc`,
    `${other} ${valid}`,
    `${other}  ${valid}`,
  ]) {
    assert.equal(verify({ ...signed(), 'webhook-signature': signature }).ok, true, signature);
  }
});

test('a timestamp more than five minutes away is refused; one within is accepted', () => {
  assert.deepEqual(verify(signed({ timestamp_s: now_s - 301 })), refused('timestamp_too_old'));
  assert.deepEqual(verify(signed({ timestamp_s: now_s + 301 })), refused('timestamp_too_new'));
  assert.equal(verify(signed({ timestamp_s: now_s - 300 })).ok, true);
  assert.equal(verify(signed({ timestamp_s: now_s + 299 })).ok, true);
});

test('a non-numeric timestamp is refused', () => {
  for (const timestamp of ['abc', '12abc', '-5', '1.5', ' 1800000000']) {
    assert.deepEqual(verify({ ...signed(), 'webhook-timestamp': timestamp }), refused('bad_timestamp'), timestamp);
  }
});

test('the timestamp is covered by the signature', () => {
  assert.deepEqual(verify({ ...signed(), 'webhook-timestamp': String(now_s + 1) }), refused('bad_signature'));
});

test('while secrets rotate, a signature by either secret is accepted', () => {
  const byB = signed({ secret: secretB });
  assert.equal(verify(byB, { secrets: [secretA, secretB] }).ok, true);
  assert.deepEqual(verify(byB, { secrets: [secretA] }), refused('bad_signature'));
  assert.deepEqual(verify(byB, { secrets: [] }), refused('bad_signature'));
});

test('a body changed by one byte is refused', () => {
  const altered = Buffer.from(body);
  altered[10] = altered[10]! ^ 1;
  assert.deepEqual(verify(signed(), { rawBody: altered }), refused('bad_signature'));
});

test('a secret that decodes to nothing is a programmer error', () => {
  assert.throws(() => verify(signed(), { secrets: ['whsec_'] }), RangeError);
});
