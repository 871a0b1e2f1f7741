import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { ClaimedDelivery } from '../persistence/webhooks.ts';
import { retryDelay, signedRequest, type DeliverySettings } from './merchant-webhooks.ts';

const SETTINGS = { retry_base_ms: 10_000, retry_max_ms: 3_600_000 } as DeliverySettings;

test('retries wait a random time under a bound that doubles from the base up to the cap (full jitter)', () => {
  const almostOne = () => 0.999_999;
  assert.equal(
    retryDelay(1, SETTINGS, () => 0),
    0,
  );
  assert.equal(retryDelay(1, SETTINGS, almostOne), 9_999);
  assert.equal(retryDelay(2, SETTINGS, almostOne), 19_999);
  assert.equal(retryDelay(9, SETTINGS, almostOne), 2_559_997);
  assert.equal(retryDelay(10, SETTINGS, almostOne), 3_599_996);
  assert.equal(retryDelay(500, SETTINGS, almostOne), 3_599_996);
});

test('a request carries one signature per current secret, each verifiable on its own', () => {
  const secrets = ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_QmFzZTY0IHNlY3JldCBmb3IgdGVzdHM='];
  const delivery = { event_id: 'evt_1', event_type: 'deposit.succeeded', created_at: new Date(0), secrets };
  const { body, headers } = signedRequest(delivery as ClaimedDelivery, { id: 't1' }, new Date());
  assert.deepEqual(JSON.parse(body), {
    id: 'evt_1',
    type: 'deposit.succeeded',
    created_at: '1970-01-01T00:00:00.000Z',
    data: { id: 't1' },
  });
  assert.equal(headers['webhook-signature'].split(' ').length, 2);
  for (const secret of secrets) new Webhook(secret).verify(body, headers);
});
