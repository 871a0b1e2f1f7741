import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { Context } from 'koa';
import type { Gateway } from '../gateway.ts';
import { createForwarder, type Command } from '../http/forward.ts';
import { createLogger } from '../logger.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { scaled } from './support/time.ts';

// The owner runs a forwarded command (without auth and limits, which the receiving instance applied)
// only when its X-Gateway-Forwarded header is signed with the cluster's key. A client cannot forge one,
// and the header on a public route changes nothing.

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

/** Signs and sends commands to `gateway` as another instance of the cluster would (the cluster's key). */
function otherInstance(secret = ADMIN_KEY) {
  return createForwarder({
    leases: { shards: 64, owns: () => false, ownerOf: () => ({ id: 'gw', url: gateway.url }), refresh: async () => {} },
    instance: 'other-instance',
    secret,
    timeout_ms: scaled(5000),
    wait_ms: 0,
    log: createLogger('silent'),
  });
}

/** What the owner answered a forwarded command, as the forwarding instance sees it. */
async function forward(from: ReturnType<typeof otherInstance>, method: string, command: Command) {
  const headers: Record<string, string> = {};
  const ctx = {
    method,
    state: { requestId: `fwd-${crypto.randomUUID()}` },
    set: (name: string, value: string) => void (headers[name.toLowerCase()] = value),
    status: 404,
    body: undefined as unknown,
  };
  assert.equal(await from.toOwner(ctx as unknown as Context, command), true);
  return { status: ctx.status, headers, text: (ctx.body as Buffer).toString() };
}

test('a read forwarded to an owner that never answers (paused past its lease) goes to the owner that took the shard', async () => {
  const user = await createUser(request, 'Paused owner');
  // A paused process: the kernel still accepts its connections, and nothing ever answers on them.
  const held: Socket[] = [];
  const paused = createServer((socket) => void held.push(socket));
  await new Promise<void>((resolve) => paused.listen(0, '127.0.0.1', resolve));
  let owner = { id: 'paused', url: `http://127.0.0.1:${(paused.address() as AddressInfo).port}` };
  const forwarder = createForwarder({
    leases: { shards: 64, owns: () => false, ownerOf: () => owner, refresh: async () => {} },
    instance: 'other-instance',
    secret: ADMIN_KEY,
    timeout_ms: scaled(30_000),
    read_timeout_ms: scaled(500),
    wait_ms: scaled(2000),
    log: createLogger('silent'),
  });
  try {
    const answered = forward(forwarder, 'GET', { kind: 'read_balance', user_id: user.id });
    // The paused owner's lease runs out while the read waits on it; the gateway takes the shard.
    await new Promise<void>((resolve) => paused.once('connection', () => resolve()));
    owner = { id: 'gw', url: gateway.url };
    const answer = await answered;
    assert.equal(answer.status, 200, answer.text);
    assert.equal(JSON.parse(answer.text).user_id, user.id);
  } finally {
    forwarder.close();
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => paused.close(resolve));
  }
});

test('a signed forwarded command skips auth and the limits: it does not count against an exhausted user', async () => {
  const user = await createUser(request, 'Counted once');
  const other = otherInstance();
  const balance = () => request('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
  assert.equal((await balance()).status, 200); // 1 of 2 this minute
  for (let i = 0; i < 3; i += 1) {
    // No credentials at all: the instance that forwarded it authenticated the client.
    const answer = await forward(other, 'GET', { kind: 'read_balance', user_id: user.id });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(JSON.parse(answer.text).user_id, user.id);
  }
  assert.equal((await balance()).status, 200, 'the forwarded reads were not counted'); // 2 of 2
  assert.equal((await balance()).status, 429);
  // Exhausted at this instance, still answered for the instance that counted it there.
  assert.equal((await forward(other, 'GET', { kind: 'read_balance', user_id: user.id })).status, 200);
  other.close();
});

test('an unsigned or wrongly signed internal command is a 404 and writes nothing', async () => {
  const user = await createUser(request, 'Unforged');
  const command = {
    kind: 'create_transaction',
    user_id: user.id,
    type: 'deposit',
    input: { amount: 500, currency: 'USD' },
    attempt: { caller: user.id, key: crypto.randomUUID(), fingerprint: 'x' },
  };
  const body = JSON.stringify({ request_id: 'forged-request-0002', command });
  const at = Math.floor(Date.now() / 1000);
  for (const signature of [undefined, `other-instance ${at} ${'A'.repeat(43)}`, 'garbage']) {
    const answer = await request('POST', '/internal/v1/commands', {
      raw: body,
      headers: { 'content-type': 'application/json', ...(signature ? { 'x-gateway-forwarded': signature } : {}) },
    });
    assert.equal(answer.status, 404, answer.text);
    assert.equal(answer.json.error, 'not_found');
  }
  // Signed with another key: a valid signature, of the wrong cluster.
  const stranger = otherInstance('not-the-cluster-key-0123456789');
  const refused = await forward(stranger, 'POST', command);
  assert.equal(refused.status, 404, refused.text);
  stranger.close();
  const list = await request('GET', `/api/v1/deposits?user_id=${user.id}`, { key: user.api_key });
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.data, []);
  // Not a route of the public API either way: the client's credentials do not open it.
  const withKey = await request('POST', '/internal/v1/commands', {
    key: ADMIN_KEY,
    body: { request_id: 'x', command },
  });
  assert.equal(withKey.status, 404);
});
