import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { client, createUser, startTestGateway } from './support/gateway.ts';

// The owner trusts a forwarded request (it skips the limits, which the receiving instance applied)
// only when its X-Gateway-Forwarded header is signed with the cluster's key. A client cannot forge one.

let gateway: Gateway;
let request: ReturnType<typeof client>;

before(async () => {
  gateway = await startTestGateway({ RATE_LIMIT_BALANCE_PER_MIN: '2' });
  request = client(gateway.url);
});
after(() => gateway.close());

test('a forged or replayed X-Gateway-Forwarded header does not get past the rate limits', async () => {
  const user = await createUser(request, 'Forger');
  const at = Math.floor(Date.now() / 1000);
  const forged = [
    `other-instance ${at} not-a-signature`,
    `other-instance ${at} ${'A'.repeat(43)}`,
    `other-instance ${at - 3600} ${'A'.repeat(43)}`,
    'garbage',
  ];
  const statuses: number[] = [];
  for (const header of forged) {
    const answer = await request('GET', `/api/v1/users/${user.id}/balance`, {
      key: user.api_key,
      headers: { 'x-gateway-forwarded': header, 'x-request-id': 'forged-request-0001' },
    });
    statuses.push(answer.status);
  }
  assert.deepEqual(statuses, [200, 200, 429, 429]);
});

test('the shard table: this lone instance owns every shard, each with an epoch and a lease in the future', async () => {
  const answer = await request('GET', '/api/v1/admin/shards', { key: 'test_admin_key_0123456789' });
  assert.equal(answer.status, 200);
  const { shards, instances } = answer.json as {
    shards: { owner: string; epoch: string; lease_expires_at: string }[];
    instances: { id: string; url: string }[];
  };
  assert.equal(instances.length, 1);
  assert.equal(instances[0]!.url, gateway.url);
  assert.equal(shards.length, 64);
  for (const row of shards) {
    assert.equal(row.owner, instances[0]!.id);
    assert.ok(BigInt(row.epoch) >= 1n);
    assert.ok(Date.parse(row.lease_expires_at) > Date.now());
  }
});
