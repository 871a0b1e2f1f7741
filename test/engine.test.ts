import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { v7 as uuidv7 } from 'uuid';
import type { AccountState, Command } from '../engine/account.ts';
import { accountBehaviour, type ActorReply, type ActorRequest } from '../engine/account-actor.ts';
import { reconcile } from '../engine/reconciliation.ts';
import { shardOf } from '../engine/shards.ts';
import { createReconciliationReader } from '../persistence/reconciliation-reader.ts';
import { Model, stepArbitrary } from './support/account-model.ts';
import { startEngine } from './support/engine.ts';
import { eventually } from './support/time.ts';
import { plainState } from './support/states.ts';

type Engine = Awaited<ReturnType<typeof startEngine>>;
let engine: Engine;
const reads: { user_id: string; after_seq: number }[] = [];

before(async () => {
  engine = await startEngine({ snapshot_every_events: 5, reads });
});
after(() => engine.close());

const now = () => new Date().toISOString();

function create(type: 'deposit' | 'withdrawal', amount: bigint, id = uuidv7()): Command {
  return {
    type: 'create',
    transaction: { id, type, amount, currency: 'USD', description: null, metadata: null },
    at: now(),
    request_id: null,
  };
}

function settle(transaction_id: string, outcome: 'succeeded' | 'failed'): Command {
  return { type: 'settle', transaction_id, outcome, at: now(), cause: 'bank_callback', request_id: null };
}

async function run(user_id: string, command: Command): Promise<ActorReply> {
  return engine.registry.ask(user_id, { kind: 'command', command });
}

async function stateOf(user_id: string): Promise<AccountState> {
  const reply = await engine.registry.ask(user_id, { kind: 'read' });
  assert.equal(reply.kind, 'state');
  return (reply as { state: AccountState }).state;
}

/** Recovers the account from Postgres alone, in a fresh behaviour with no snapshot. */
async function replayed(user_id: string): Promise<AccountState> {
  const fresh = accountBehaviour(user_id, {
    ...engine.deps,
    snapshots: { latest: () => Promise.resolve(undefined), save: () => Promise.resolve() },
  });
  const [reply] = await fresh.handle([{ kind: 'read' }]);
  return (reply as { state: AccountState }).state;
}

describe('an uncertain commit', () => {
  test('is not tried again command by command: each command of the batch is answered uncertain', async () => {
    // The journal's link failed mid-commit: the batch may have committed. A second try of each command
    // would fail on its sequence number if it had, and be answered "failed" for a committed deposit.
    const appends: number[] = [];
    const uncertain = accountBehaviour(uuidv7(), {
      ...engine.deps,
      journal: {
        ...engine.deps.journal,
        append: (append) => {
          appends.push(append.events.length);
          return Promise.resolve({ ok: false, reason: 'uncertain', error: new Error('connection reset') });
        },
      },
    });
    const deposit = (): ActorRequest => ({
      kind: 'command',
      command: {
        type: 'create',
        transaction: {
          id: uuidv7(),
          type: 'deposit',
          amount: 100n,
          currency: 'USD',
          description: null,
          metadata: null,
        },
        at: new Date().toISOString(),
        request_id: null,
      },
    });
    const replies = await uncertain.handle([deposit(), deposit()]);
    assert.deepEqual(appends, [2], 'one append of the whole batch, not one per command afterwards');
    assert.deepEqual(replies, [
      { kind: 'refused', reason: 'uncertain' },
      { kind: 'refused', reason: 'uncertain' },
    ]);
  });
});

describe('the account actor on the real journal', () => {
  test('random sequences agree with the model after every step; the journal replays to the same state', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 25 }), async (steps) => {
        const user_id = uuidv7();
        const model = new Model();
        for (const step of steps) {
          const { command, accepted } = model.command(step, uuidv7());
          const reply = await run(user_id, command);
          assert.equal(reply.kind, 'done');
          if (command.type !== 'start_processing') {
            assert.equal((reply as { outcome: { kind: string } }).outcome.kind === 'accepted', accepted);
          }
          model.check(await stateOf(user_id));
        }
        assert.deepEqual(plainState(await replayed(user_id)), plainState(await stateOf(user_id)));
      }),
      { numRuns: 25 },
    );
  });

  test("a bank callback's receipt is committed with the settlement it carries, and only then", async () => {
    const user_id = uuidv7();
    const deposit = create('deposit', 100n);
    assert.equal((await run(user_id, deposit)).kind, 'done');
    const id = deposit.type === 'create' ? deposit.transaction.id : '';
    const receipt = (webhook_id: string) => ({ webhook_id, reference: id, payload: { webhook: webhook_id } });
    const inbox = (webhook_id: string) =>
      engine.sql<{ reference: string; payload: unknown }[]>`
        SELECT reference, payload FROM webhook_inbox WHERE webhook_id = ${webhook_id}`;
    const first = `wh-${uuidv7()}`;
    const second = `wh-${uuidv7()}`;
    const [settled, again] = await Promise.all(
      [first, second].map((webhook_id) =>
        engine.registry.ask(user_id, {
          kind: 'command',
          command: settle(id, 'succeeded'),
          receipt: receipt(webhook_id),
        }),
      ),
    );
    assert.equal(settled?.kind === 'done' && settled.outcome.kind, 'accepted');
    assert.equal(again?.kind === 'done' && again.outcome.kind, 'noop');
    // The settlement's receipt is in the inbox with it; the no-op's is not (the edge records that one).
    assert.deepEqual([...(await inbox(first))], [{ reference: id, payload: { webhook: first } }]);
    assert.deepEqual([...(await inbox(second))], []);
    const [row] = await engine.sql<{ status: string }[]>`SELECT status FROM transactions WHERE id = ${id}`;
    assert.equal(row?.status, 'succeeded');
  });

  test('an append with a stale fencing epoch is refused, nothing is written, and the actor is dropped', async () => {
    const user_id = uuidv7();
    const deposit = create('deposit', 100n);
    assert.equal((await run(user_id, deposit)).kind, 'done');
    const shard = shardOf(user_id, engine.ownership.shards);
    await engine.sql`UPDATE shard_leases SET epoch = epoch + 1, owner = 'someone-else' WHERE shard = ${shard}`;
    const reply = await run(user_id, create('deposit', 200n));
    assert.deepEqual(reply, { kind: 'refused', reason: 'stale_epoch' });
    assert.equal(engine.registry.isAlive(user_id), false);
    assert.equal(engine.ownership.epochOf(shard), undefined);
    const rows = await engine.sql`SELECT count(*)::int AS n FROM journal WHERE user_id = ${user_id}`;
    assert.equal(rows[0]?.n, 1);
    assert.deepEqual(await run(user_id, create('deposit', 300n)), { kind: 'refused', reason: 'not_owned' });
    // A restarted instance takes its shards back (and fences out whoever had them).
    await engine.close();
    engine = await startEngine({ snapshot_every_events: 5, reads });
    assert.equal((await run(user_id, create('deposit', 300n))).kind, 'done');
  });

  test('one failing append does not fail the others in its batch', async () => {
    await engine.close();
    const slow = await startEngine({ batch_wait_ms: 100 });
    try {
      const [a, b, c] = [uuidv7(), uuidv7(), uuidv7()];
      await Promise.all([a, b, c].map((user) => slow.registry.ask(user, { kind: 'read' })));
      // Another writer takes b's next sequence number behind the actor's back.
      const intruder = { type: 'transaction_created', transaction: { id: uuidv7() } };
      await slow.sql`INSERT INTO journal (user_id, seq, shard, epoch, type, payload, created_at)
        VALUES (${b}, 1, 0, 0, 'transaction_created', ${JSON.stringify(intruder)}::text::jsonb, now())`;
      const replies = await Promise.all(
        [a, b, c].map((user) => slow.registry.ask(user, { kind: 'command', command: create('deposit', 10n) })),
      );
      assert.equal(replies[0]!.kind, 'done');
      assert.deepEqual(replies[1], { kind: 'refused', reason: 'failed' });
      assert.equal(replies[2]!.kind, 'done');
      const written = await slow.sql`SELECT user_id FROM transactions WHERE user_id IN (${a}, ${b}, ${c})`;
      assert.deepEqual(written.map((row) => row.user_id).sort(), [a, c].sort());
    } finally {
      await slow.close();
      engine = await startEngine({ snapshot_every_events: 5, reads });
    }
  });

  test('snapshots every N events and on passivation; recovery is the snapshot plus the journal after it', async () => {
    const user_id = uuidv7();
    const ids: string[] = [];
    for (let i = 0; i < 7; i += 1) {
      const reply = await run(user_id, create('deposit', 100n));
      ids.push((reply as { outcome: { transaction: { id: string } } }).outcome.transaction.id);
    }
    for (const id of ids.slice(0, 5)) await run(user_id, settle(id, 'succeeded'));
    const before = await stateOf(user_id);
    assert.equal(before.seq, 12);
    // Snapshots are saved after the reply (fire and forget): wait for the one past the 10th event.
    // Every 5 events, one save at a time: the latest periodic snapshot is at 10, or just past it when
    // the one at 5 was still being written when the 10th event committed.
    const periodic = await eventually(async () => {
      const [row] = await engine.sql`SELECT max(seq)::int AS seq FROM snapshots WHERE user_id = ${user_id}`;
      return row?.seq >= 10 ? (row!.seq as number) : undefined;
    });
    assert.ok(periodic >= 10 && periodic <= 12, `periodic snapshot at ${periodic}`);

    const idle = await startEngine({ idle_ms: 1 });
    try {
      await engine.close();
      await idle.registry.ask(user_id, { kind: 'read' });
      await idle.registry.passivateIdle();
      engine = await startEngine({ snapshot_every_events: 5, reads });
    } finally {
      await idle.close();
    }
    const onPassivation = await eventually(async () => {
      const [row] = await engine.sql`SELECT max(seq)::int AS seq FROM snapshots WHERE user_id = ${user_id}`;
      return row?.seq === 12 ? 12 : undefined;
    });
    assert.equal(onPassivation, 12);
    reads.length = 0;
    assert.deepEqual(plainState(await stateOf(user_id)), plainState(before));
    assert.deepEqual(reads, [{ user_id, after_seq: 12 }]);
  });

  test('a corrupt snapshot falls back to the whole journal', async () => {
    const user_id = uuidv7();
    for (let i = 0; i < 6; i += 1) await run(user_id, create('deposit', 100n));
    const before = await stateOf(user_id);
    await engine.close();
    engine = await startEngine({ snapshot_every_events: 5, reads });
    await engine.sql`UPDATE snapshots SET state = '{"version": 1, "seq": "garbage"}'::jsonb WHERE user_id = ${user_id}`;
    reads.length = 0;
    assert.deepEqual(plainState(await stateOf(user_id)), plainState(before));
    assert.deepEqual(reads, [{ user_id, after_seq: 0 }]);
  });
});

describe('reconciliation', () => {
  test('is clean after activity, and names the account whose read model disagrees', async () => {
    const user_id = uuidv7();
    const deposit = (await run(user_id, create('deposit', 5000n))) as { outcome: { transaction: { id: string } } };
    await run(user_id, settle(deposit.outcome.transaction.id, 'succeeded'));
    const withdrawal = (await run(user_id, create('withdrawal', 1200n))) as {
      outcome: { transaction: { id: string } };
    };
    const live = async (id: string) => (engine.registry.isAlive(id) ? stateOf(id) : undefined);
    const clean = await reconcile(createReconciliationReader(engine.sql), { liveState: live });
    assert.deepEqual(
      clean.discrepancies.filter((d) => d.user_id === user_id),
      [],
    );

    await engine.sql`UPDATE transactions SET amount = 1300 WHERE id = ${withdrawal.outcome.transaction.id}`;
    const dirty = await reconcile(createReconciliationReader(engine.sql), { liveState: live });
    const mine = dirty.discrepancies.filter((d) => d.user_id === user_id);
    assert.ok(mine.some((d) => d.check === 'read_model balance held' && d.journal === '1200' && d.other === '1300'));
    assert.ok(mine.some((d) => d.check === 'read_model balance available' && d.journal === '3800'));
    await engine.sql`UPDATE transactions SET amount = 1200 WHERE id = ${withdrawal.outcome.transaction.id}`;
  });

  test('compares a live actor at the snapshot sequence; one ahead is newer, one behind is reported', async () => {
    const user_id = uuidv7();
    await run(user_id, create('deposit', 700n));
    const state = await stateOf(user_id);
    const mine = async (live: (id: string) => Promise<AccountState | undefined>) =>
      (await reconcile(createReconciliationReader(engine.sql), { liveState: live })).discrepancies.filter(
        (d) => d.user_id === user_id,
      );
    const wrong = { ...state, balances: { USD: { available: 1n, held: 0n } } };
    assert.deepEqual(
      (await mine((id) => Promise.resolve(id === user_id ? wrong : undefined))).map((d) => d.check),
      ['actor available'],
    );
    assert.deepEqual(
      await mine((id) => Promise.resolve(id === user_id ? { ...wrong, seq: state.seq + 1 } : undefined)),
      [],
    );
    assert.deepEqual(
      (await mine((id) => Promise.resolve(id === user_id ? { ...state, seq: state.seq - 1 } : undefined))).map(
        (d) => d.check,
      ),
      ['actor seq'],
    );
  });
});
