import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { createLogger } from '../logger.ts';
import { createJournal, readJournal } from '../persistence/journal.ts';
import { createLeaseStore } from '../persistence/leases.ts';
import { createSnapshotStore } from '../persistence/snapshots.ts';
import { createSql, type Sql } from '../persistence/sql.ts';
import { testDatabaseUrl } from '../test/support/database.ts';
import type { Command } from './account.ts';
import { createRegistry } from './registry.ts';
import type { Ownership } from './shards.ts';
import { holdShard } from '../test/support/shard-lock.ts';

const SHARDS = [0, 1, 2, 3];

let sql: Sql;
let ownership: Ownership;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 6, application_name: 'registry-test' });
  const epochs = await createLeaseStore(sql).takeOver(`registry-test-${process.pid}`, SHARDS, null);
  ownership = {
    shards: SHARDS.length,
    epochOf: (shard) => epochs.get(shard),
    lose: (shard) => void epochs.delete(shard),
    owned: () => [...epochs.keys()],
  };
});
after(() => sql.end());

/** A registry on the real journal, recording each account's recoveries (journal reads). */
function registryUnderTest(options: { actors_live_max: number; queue_appends_max?: number }) {
  const log = createLogger('silent');
  const recoveries = new Map<string, number>();
  const journal = createJournal(sql, {
    batch_size_max: 1,
    batch_wait_ms: 0,
    flushes_in_flight_max: 1,
    ...(options.queue_appends_max === undefined ? {} : { queue_appends_max: options.queue_appends_max }),
    idempotency_ttl_hours: 24,
    log,
  });
  const registry = createRegistry({
    deps: {
      journal,
      snapshots: createSnapshotStore(sql),
      readEvents: (user_id, after_seq) => {
        recoveries.set(user_id, (recoveries.get(user_id) ?? 0) + 1);
        return readJournal(sql, user_id, after_seq);
      },
      ownership,
      snapshot_every_events: 1000,
      log,
    },
    idle_ms: 60_000,
    mailbox_max: 100,
    actors_live_max: options.actors_live_max,
    batch_max: 16,
    ask_timeout_ms: 10_000,
    log,
  });
  return {
    registry,
    recoveries: (user_id: string) => recoveries.get(user_id) ?? 0,
    close: async () => {
      await registry.close();
      await journal.close();
    },
  };
}

function deposit(amount: bigint): Command {
  const transaction = {
    id: uuidv7(),
    type: 'deposit' as const,
    amount,
    currency: 'USD',
    description: null,
    metadata: null,
  };
  return { type: 'create', transaction, at: new Date().toISOString(), request_id: null };
}

/** Resolves with true once `promise` settles, or false if it is still pending after the current turn. */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

describe('the registry: a bounded number of live actors', () => {
  test('when full, the least recently used idle actor is evicted; its account recovers intact', async () => {
    const { registry, recoveries, close } = registryUnderTest({ actors_live_max: 2 });
    const [a, b, c] = [uuidv7(), uuidv7(), uuidv7()];
    assert.equal((await registry.ask(a, { kind: 'command', command: deposit(500n) })).kind, 'done');
    assert.equal((await registry.ask(b, { kind: 'read' })).kind, 'state');
    // Asking a again makes b the least recently used.
    assert.equal((await registry.ask(a, { kind: 'read' })).kind, 'state');
    assert.equal((await registry.ask(c, { kind: 'read' })).kind, 'state');
    assert.equal(registry.alive(), 2);
    assert.deepEqual([registry.isAlive(a), registry.isAlive(b), registry.isAlive(c)], [true, false, true]);

    // Now a is the least recently used: b comes back in its place, and a recovers from the journal.
    assert.equal((await registry.ask(b, { kind: 'read' })).kind, 'state');
    assert.deepEqual([registry.isAlive(a), registry.isAlive(b), registry.isAlive(c)], [false, true, true]);
    const again = await registry.ask(a, { kind: 'read' });
    assert.equal(again.kind === 'state' && again.state.open.first()?.amount, 500n);
    assert.equal(recoveries(a), 2, 'recovered once at spawn, once after its eviction');
    assert.equal(registry.alive(), 2);
    await close();
  });

  test('when full and no actor is idle, an ask for a new account is refused busy at once', async () => {
    const { registry, close } = registryUnderTest({ actors_live_max: 1 });
    const [a, b] = [uuidv7(), uuidv7()];
    assert.equal((await registry.ask(a, { kind: 'read' })).kind, 'state');
    const releaseLease = await holdShard(sql);
    // a's deposit waits on its commit: a is busy, and it is the only actor allowed.
    const pending = registry.ask(a, { kind: 'command', command: deposit(100n) });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = registry.ask(b, { kind: 'read' });
    assert.ok(await settledNow(refused), 'answered without waiting for a');
    assert.deepEqual(await refused, { kind: 'refused', reason: 'busy' });
    assert.equal(registry.isAlive(b), false);

    await releaseLease();
    assert.equal((await pending).kind, 'done');
    assert.equal((await registry.ask(b, { kind: 'read' })).kind, 'state', 'a is idle again, so evicted for b');
    assert.deepEqual([registry.isAlive(a), registry.isAlive(b)], [false, true]);
    await close();
  });
});

describe('the registry on a full journal queue', () => {
  test("the journal's busy refusal reaches the client as busy, with no recovery and no change of state", async () => {
    const { registry, recoveries, close } = registryUnderTest({ actors_live_max: 100, queue_appends_max: 1 });
    const [first, second, third] = [uuidv7(), uuidv7(), uuidv7()];
    for (const user of [first, second, third]) await registry.ask(user, { kind: 'read' });
    const releaseLease = await holdShard(sql);
    // One append in flight (waiting on the lease rows), one queued: the queue is full.
    const inFlight = registry.ask(first, { kind: 'command', command: deposit(1n) });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const queued = registry.ask(second, { kind: 'command', command: deposit(2n) });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await registry.ask(third, { kind: 'command', command: deposit(3n) }), {
      kind: 'refused',
      reason: 'busy',
    });

    await releaseLease();
    assert.deepEqual([(await inFlight).kind, (await queued).kind], ['done', 'done']);
    const retried = await registry.ask(third, { kind: 'command', command: deposit(3n) });
    assert.equal(retried.kind, 'done');
    const state = await registry.ask(third, { kind: 'read' });
    assert.equal(state.kind === 'state' && state.state.seq, 1, 'the refused deposit left no trace');
    assert.equal(recoveries(third), 1, 'nothing was written, so nothing to recover from');
    await close();
  });
});
