import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../logger.ts';
import { decide, emptyAccount, step, type AccountState, type Change, type Command } from './account.ts';
import { ENGINE_LIMITS } from './engine.ts';
import { createTransactionFeed, type Subscription, type TransactionFeedOptions } from './transaction-feed.ts';

const ALICE = '0190d3a0-0000-7000-8000-00000000000a';
const BOB = '0190d3a0-0000-7000-8000-00000000000b';
const AT = '2026-01-01T00:00:00.000Z';

function feed(options: Partial<TransactionFeedOptions> = {}) {
  return createTransactionFeed({
    subscribers_max: 10,
    subscribers_per_owner_max: 10,
    buffer_max: 10,
    log: createLogger('silent'),
    ...options,
  });
}

function subscribed(result: ReturnType<ReturnType<typeof feed>['subscribe']>): Subscription {
  assert.ok(result.ok, JSON.stringify(result));
  return result.subscription;
}

/** Decides and applies commands in turn, as the actor does; returns the changes they made and the state after. */
function commit(state: AccountState, commands: Command[]): { changes: Change[]; after: AccountState } {
  const changes: Change[] = [];
  let after = state;
  for (const command of commands) {
    const decision = decide(after, command);
    assert.equal(decision.kind, 'accepted');
    if (decision.kind !== 'accepted') continue;
    for (const event of decision.events) {
      const folded = step(after, event);
      changes.push(folded.change);
      after = folded.state;
    }
  }
  return { changes, after };
}

const create = (id: string): Command => ({
  type: 'create',
  transaction: { id, type: 'deposit', amount: 1050n, currency: 'USD', description: null, metadata: null },
  at: AT,
  request_id: null,
});
const stamp = { at: AT, cause: 'bank_callback' as const, request_id: null };

async function statuses(subscription: Subscription, count: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const item = await subscription.next();
    assert.equal(item.kind, 'transaction');
    if (item.kind === 'transaction')
      seen.push(`${item.transaction.user_id === ALICE ? 'A' : 'B'}:${item.transaction.status}`);
  }
  return seen;
}

test('each change of one commit arrives, as the transaction stands after it, to its user and to everyone-subscribers', async () => {
  const transactions = feed();
  const alice = subscribed(transactions.subscribe({ user_id: ALICE, owner: ALICE }));
  const everyone = subscribed(transactions.subscribe({ user_id: undefined, owner: 'admin' }));
  const first = commit(emptyAccount(ALICE), [
    create('0190d3a0-0000-7000-8000-000000000101'),
    {
      type: 'start_processing',
      transaction_id: '0190d3a0-0000-7000-8000-000000000101',
      bank_reference: 'b1',
      attempts: 1,
      ...stamp,
    },
    { type: 'settle', transaction_id: '0190d3a0-0000-7000-8000-000000000101', outcome: 'succeeded', ...stamp },
  ]);
  transactions.onCommitted(ALICE, first.changes);
  const other = commit(emptyAccount(BOB), [create('0190d3a0-0000-7000-8000-000000000201')]);
  transactions.onCommitted(BOB, other.changes);

  assert.deepEqual(await statuses(alice, 3), ['A:pending', 'A:processing', 'A:succeeded']);
  assert.deepEqual(await statuses(everyone, 4), ['A:pending', 'A:processing', 'A:succeeded', 'B:pending']);
  const waiting = alice.next();
  const again = commit(first.after, [create('0190d3a0-0000-7000-8000-000000000102')]);
  transactions.onCommitted(ALICE, again.changes);
  const item = await waiting;
  assert.equal(item.kind === 'transaction' && item.transaction.id, '0190d3a0-0000-7000-8000-000000000102');
});

test('a subscriber that falls buffer_max changes behind is dropped; the others keep theirs', async () => {
  const transactions = feed({ buffer_max: 2 });
  const slow = subscribed(transactions.subscribe({ user_id: ALICE, owner: 'slow' }));
  const quick = subscribed(transactions.subscribe({ user_id: ALICE, owner: 'quick' }));
  let state = emptyAccount(ALICE);
  for (const n of [1, 2, 3]) {
    const committed = commit(state, [create(`0190d3a0-0000-7000-8000-00000000030${n}`)]);
    transactions.onCommitted(ALICE, committed.changes);
    state = committed.after;
    assert.equal((await quick.next()).kind, 'transaction');
  }
  assert.deepEqual(await slow.next(), { kind: 'end', reason: 'overflow' });
  assert.deepEqual(await slow.next(), { kind: 'end', reason: 'overflow' });
  assert.equal(transactions.size(), 1);
});

test("one delivery is taken whole: a relayed batch of the relay's size reaches a subscriber of every user", async () => {
  // The engine's own bounds: a batch from another instance (up to feed_relay_batch_max changes) is
  // larger than one subscriber's buffer, and arrives in one call, with no turn for the reader between.
  const transactions = feed({ buffer_max: ENGINE_LIMITS.feed_buffer_max });
  const admin = subscribed(transactions.subscribe({ user_id: undefined, owner: 'admin' }));
  const ids = Array.from(
    { length: ENGINE_LIMITS.feed_relay_batch_max },
    (_, i) => `0190d3a0-0000-7000-8000-${String(i).padStart(12, '0')}`,
  );
  const relayed = commit(emptyAccount(BOB), ids.map(create)).changes.map((change) => change.transaction);
  assert.ok(relayed.length > ENGINE_LIMITS.feed_buffer_max);
  transactions.receive(relayed);
  const seen: string[] = [];
  while (seen.length < relayed.length) {
    const item = await admin.next();
    assert.equal(item.kind, 'transaction', `after ${seen.length} changes`);
    if (item.kind === 'transaction') seen.push(item.transaction.id);
  }
  assert.deepEqual(seen, ids);
  // Still behind by a whole buffer when the next delivery comes: that one drops it.
  transactions.receive(relayed.slice(0, ENGINE_LIMITS.feed_buffer_max));
  transactions.receive(relayed.slice(0, 1));
  assert.deepEqual(await admin.next(), { kind: 'end', reason: 'overflow' });
  assert.equal(transactions.size(), 0);
});

test('subscribers are bounded in all and per owner; a closed subscription frees its place', () => {
  const transactions = feed({ subscribers_max: 3, subscribers_per_owner_max: 2 });
  const first = subscribed(transactions.subscribe({ user_id: ALICE, owner: ALICE }));
  subscribed(transactions.subscribe({ user_id: ALICE, owner: ALICE }));
  assert.deepEqual(transactions.subscribe({ user_id: ALICE, owner: ALICE }), {
    ok: false,
    reason: 'owner_subscribers_max',
  });
  subscribed(transactions.subscribe({ user_id: BOB, owner: BOB }));
  assert.deepEqual(transactions.subscribe({ user_id: BOB, owner: BOB }), { ok: false, reason: 'subscribers_max' });
  first.close();
  first.close();
  assert.equal(transactions.size(), 2);
  subscribed(transactions.subscribe({ user_id: ALICE, owner: ALICE }));
});

test('close ends every subscription, waiting or not, and refuses new ones', async () => {
  const transactions = feed();
  const waiting = subscribed(transactions.subscribe({ user_id: ALICE, owner: ALICE })).next();
  const idle = subscribed(transactions.subscribe({ user_id: undefined, owner: 'admin' }));
  transactions.close();
  assert.deepEqual(await waiting, { kind: 'end', reason: 'closed' });
  assert.deepEqual(await idle.next(), { kind: 'end', reason: 'closed' });
  assert.deepEqual(transactions.subscribe({ user_id: ALICE, owner: ALICE }), { ok: false, reason: 'closed' });
  assert.equal(transactions.size(), 0);
});

test('a relay that throws ends the affected subscribers instead of throwing into the actor', async () => {
  const transactions = feed();
  const alice = subscribed(transactions.subscribe({ user_id: ALICE, owner: ALICE }));
  const bob = subscribed(transactions.subscribe({ user_id: BOB, owner: BOB }));
  transactions.shareWith(() => {
    throw new Error('the relay is down');
  });
  const { changes } = commit(emptyAccount(ALICE), [create('0190d3a0-0000-7000-8000-000000000999')]);
  assert.doesNotThrow(() => transactions.onCommitted(ALICE, changes));
  assert.deepEqual(await alice.next(), { kind: 'end', reason: 'failed' });
  assert.equal(transactions.size(), 1);
  bob.close();
});
