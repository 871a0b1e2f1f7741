import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { rendezvousOwner } from '../engine/shard-leases.ts';
import { client, type Answer, pairIds, startGatewayPair, createUserOwnedBy } from './support/gateway.ts';

// Two gateways of one cluster (one database, one Redis namespace). A request that arrives at the
// instance that does not own the account is forwarded to the owner as a command: the client cannot
// tell it from a request sent to the owner itself, byte for byte, first answer and replays alike.

const SHARDS = 8;
let a: Gateway;
let b: Gateway;
let user: { id: string; api_key: string };

before(async () => {
  [a, b] = await startGatewayPair('fwd', SHARDS);
  // A user whose account b owns: a request for it at a is forwarded.
  user = await createUserOwnedBy(a, b, SHARDS, 'Forwarded');
});
after(async () => {
  await a?.close();
  await b?.close();
});

test("a pair's instance ids give each some shards, also for a process id under which plain names leave one none", () => {
  const owners = (ids: string[]) => new Set(Array.from({ length: SHARDS }, (_, shard) => rendezvousOwner(shard, ids)));
  // The names the pair had (`<name>-a-<pid>`, `<name>-b-<pid>`): for about 1 process id in 128, one of
  // the two owned none of the 8 shards, and the pair never settled (a suite's whole file failed).
  let pid = 1;
  while (owners([`gql-a-${pid}`, `gql-b-${pid}`]).size === 2) pid += 1;
  const ids = pairIds('gql', SHARDS, pid);
  assert.deepEqual([...owners(ids)].sort(), [...ids].sort());
});

/** The headers a client of the API reads on a create's answer (the edge's rate-limit headers aside). */
const HEADERS = ['content-type', 'content-length', 'idempotent-replayed', 'x-request-id', 'retry-after', 'location'];
const seen = (answer: Answer) => Object.fromEntries(HEADERS.map((name) => [name, answer.headers.get(name)]));

function post(via: Gateway, path: string, body: unknown, key: string, requestId: string) {
  return client(via.url)('POST', path, {
    key: user.api_key,
    body,
    idempotencyKey: key,
    headers: { 'x-request-id': requestId },
  });
}

test('a forwarded deposit and its replays, from either instance, are the same answer byte for byte', async () => {
  const key = crypto.randomUUID();
  const first = await post(a, '/api/v1/deposits', { amount: 1234, currency: 'USD' }, key, 'req-forwarded-0001');
  assert.equal(first.status, 202, first.text);
  assert.equal(first.headers.get('idempotent-replayed'), null);
  assert.equal(first.headers.get('x-request-id'), 'req-forwarded-0001');
  assert.ok(b.accounts.isAlive(user.id) && !a.accounts.isAlive(user.id), 'the owner b ran it, not a');
  const direct = await post(b, '/api/v1/deposits', { amount: 1234, currency: 'USD' }, key, 'req-forwarded-0001');
  const again = await post(a, '/api/v1/deposits', { amount: 1234, currency: 'USD' }, key, 'req-forwarded-0001');
  for (const replay of [direct, again]) {
    assert.equal(replay.status, 202);
    assert.equal(replay.text, first.text);
    assert.deepEqual(seen(replay), { ...seen(first), 'idempotent-replayed': 'true' });
  }
  // The key reused with another body: the same 422 from the owner and through the other instance.
  const reusedDirect = await post(b, '/api/v1/deposits', { amount: 99, currency: 'USD' }, key, 'req-reused-0001');
  const reusedForwarded = await post(a, '/api/v1/deposits', { amount: 99, currency: 'USD' }, key, 'req-reused-0001');
  assert.equal(reusedDirect.status, 422, reusedDirect.text);
  assert.equal(reusedForwarded.text, reusedDirect.text);
  assert.deepEqual(seen(reusedForwarded), seen(reusedDirect));
});

test('a rejection, a validation error and a balance read: forwarded and direct answers are identical', async () => {
  const over = { amount: 10 ** 12, currency: 'USD' };
  const direct = await post(b, '/api/v1/withdrawals', over, crypto.randomUUID(), 'req-rejected-0001');
  const forwarded = await post(a, '/api/v1/withdrawals', over, crypto.randomUUID(), 'req-rejected-0001');
  assert.equal(direct.status, 422, direct.text);
  assert.equal(forwarded.text, direct.text);
  assert.deepEqual(seen(forwarded), seen(direct));
  // Refused at the edge that received it, from the one catalogue, as the owner would refuse it.
  const invalid = { amount: -1, currency: 'USD' };
  const invalidDirect = await post(b, '/api/v1/deposits', invalid, crypto.randomUUID(), 'req-invalid-0001');
  const invalidForwarded = await post(a, '/api/v1/deposits', invalid, crypto.randomUUID(), 'req-invalid-0001');
  assert.equal(invalidDirect.status, 400, invalidDirect.text);
  assert.equal(invalidForwarded.text, invalidDirect.text);
  const read = (via: Gateway) =>
    client(via.url)('GET', `/api/v1/users/${user.id}/balance`, {
      key: user.api_key,
      headers: { 'x-request-id': 'req-balance-0001' },
    });
  const [fromOwner, viaOther] = [await read(b), await read(a)];
  assert.equal(fromOwner.status, 200);
  assert.equal(viaOther.text, fromOwner.text);
  assert.deepEqual(seen(viaOther), seen(fromOwner));
});
