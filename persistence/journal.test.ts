import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { createLogger } from '../logger.ts';
import { testDatabaseUrl } from '../test/support/database.ts';
import { captureLines } from '../test/support/log-capture.ts';
import { createJournal, type Append, type AppendOutcome } from './journal.ts';
import { createLeaseStore } from './leases.ts';
import { createSql, type Sql } from './sql.ts';
import { holdShard } from '../test/support/shard-lock.ts';
import { pendingTransaction } from '../test/support/transactions.ts';
import { toReadModelRow } from './transaction-row.ts';

const SHARD = 0;
// Long enough that every append queued in one synchronous step lands in one batch, whatever the load.
const BATCH_WAIT_MS = 50;

let sql: Sql;
let epoch: bigint;
before(async () => {
  sql = createSql(await testDatabaseUrl(), { pool_max: 4, application_name: 'journal-test' });
  const epochs = await createLeaseStore(sql).takeOver(`journal-test-${process.pid}`, [SHARD], null);
  epoch = epochs.get(SHARD)!;
});
after(() => sql.end());

/** A journal whose warnings and errors are kept, with the size of every batch it committed. */
function journalUnderTest() {
  const log = captureLines();
  const batches: number[] = [];
  const journal = createJournal(sql, {
    batch_size_max: 256,
    batch_wait_ms: BATCH_WAIT_MS,
    flushes_in_flight_max: 1,
    idempotency_ttl_hours: 24,
    log: createLogger('warn', log.stream),
    onBatch: (size) => batches.push(size),
  });
  const splits = () => log.lines().filter((line) => line.msg === 'batch failed; committing its appends one by one');
  return { journal, batches, splits };
}

/** One new deposit of a fresh account: its creation event, its read-model row, and its idempotency records. */
function deposit(options: { amount?: bigint; keys?: { caller: string; key: string }[] } = {}): Append {
  const transaction = pendingTransaction({ amount: options.amount ?? 100n });
  const { id, user_id, created_at: at } = transaction;
  return {
    user_id,
    shard: SHARD,
    epoch,
    first_seq: 1,
    events: [{ type: 'transaction_created', transaction_id: id, payload: { id }, request_id: null, at }],
    rows: [toReadModelRow(transaction)],
    idempotency: (options.keys ?? []).map(({ caller, key }) => ({
      caller,
      key,
      fingerprint: `fp-${id}`,
      user_id,
      answer: { outcome: { outcome: { kind: 'noop', reason: 'not_open' }, request_id: id } },
    })),
  };
}

/** Queues every append in one synchronous step, so that they share a batch. */
function appendTogether(journal: ReturnType<typeof createJournal>, appends: Append[]): Promise<AppendOutcome[]> {
  return Promise.all(appends.map((append) => journal.append(append)));
}

async function committed(append: Append): Promise<boolean> {
  const [journal] = await sql<
    { n: number }[]
  >`SELECT count(*)::int AS n FROM journal WHERE user_id = ${append.user_id}`;
  const [rows] = await sql<
    { n: number }[]
  >`SELECT count(*)::int AS n FROM transactions WHERE user_id = ${append.user_id}`;
  assert.equal(journal!.n, rows!.n, 'the journal and the read model commit together');
  return journal!.n > 0;
}

describe('the journal: one append fails alone', () => {
  test('a bad row fails its own append; the good appends of its batch commit', async () => {
    const { journal, batches } = journalUnderTest();
    const appends = [deposit(), deposit({ amount: 0n }), deposit()];
    const outcomes = await appendTogether(journal, appends);
    await journal.close();

    assert.equal(batches[0], 3, 'the three appends were one batch');
    assert.deepEqual(outcomes[0], { ok: true });
    assert.equal(outcomes[1]!.ok, false);
    assert.equal(!outcomes[1]!.ok && outcomes[1]!.reason, 'failed');
    assert.deepEqual(outcomes[2], { ok: true });
    assert.deepEqual(await Promise.all(appends.map(committed)), [true, false, true]);
  });

  test('two accounts sharing a (caller, key) in one batch: the first commits with the batch, the other is a conflict', async () => {
    const { journal, batches, splits } = journalUnderTest();
    // The admin using one key for two users' deposits, the two arriving in the same moment.
    const shared = { caller: 'admin', key: `shared-${uuidv7()}` };
    const appends = [deposit({ keys: [shared] }), deposit({ keys: [{ caller: 'admin', key: uuidv7() }] })];
    appends.push(deposit({ keys: [shared] }));
    const outcomes = await appendTogether(journal, appends);
    await journal.close();

    assert.equal(batches[0], 3, 'the three appends were one batch');
    assert.deepEqual(outcomes, [{ ok: true }, { ok: true }, { ok: false, reason: 'idempotency_conflict' }]);
    assert.deepEqual(await Promise.all(appends.map(committed)), [true, true, false]);
    const [record] = await sql<{ user_id: string }[]>`
      SELECT user_id FROM idempotency_keys WHERE caller = ${shared.caller} AND key = ${shared.key}`;
    assert.equal(record!.user_id, appends[0]!.user_id, 'the key belongs to the first append of the batch');
    assert.equal(splits().length, 0, 'a shared key does not fail the batch');
  });

  test('an append holding one key twice fails alone, without failing the batch it came with', async () => {
    const { journal, splits } = journalUnderTest();
    const twice = { caller: `user-${uuidv7()}`, key: 'k' };
    const appends = [deposit(), deposit({ keys: [twice, twice] }), deposit()];
    const outcomes = await appendTogether(journal, appends);
    await journal.close();

    assert.deepEqual(outcomes[0], { ok: true });
    assert.equal(!outcomes[1]!.ok && outcomes[1]!.reason, 'failed');
    assert.deepEqual(outcomes[2], { ok: true });
    assert.deepEqual(await Promise.all(appends.map(committed)), [true, false, true]);
    assert.equal(splits().length, 0, 'the bad append never reached Postgres');
  });

  test('an append that fails alone in its batch does not stop the journal', async () => {
    const { journal } = journalUnderTest();
    const [bad] = await appendTogether(journal, [deposit({ amount: 0n })]);
    const good = deposit();
    const [next] = await appendTogether(journal, [good]);
    await journal.close();

    assert.equal(!bad!.ok && bad!.reason, 'failed');
    assert.deepEqual(next, { ok: true });
    assert.equal(await committed(good), true);
  });
});

describe('the journal: a bounded queue', () => {
  test('past queue_appends_max an append is refused busy at once, writes nothing, and the queue drains', async () => {
    const log = captureLines();
    const journal = createJournal(sql, {
      batch_size_max: 1,
      batch_wait_ms: 0,
      flushes_in_flight_max: 1,
      queue_appends_max: 2,
      idempotency_ttl_hours: 24,
      log: createLogger('warn', log.stream),
    });
    const releaseLease = await holdShard(sql, SHARD);
    // One batch in flight (waiting on the lease row), two queued behind it: the queue is full.
    const [inFlight, queued1, queued2, refused] = [deposit(), deposit(), deposit(), deposit()];
    const accepted = [inFlight, queued1, queued2].map((append) => journal.append(append));
    assert.equal(journal.depth(), 2);
    const started = performance.now();
    assert.deepEqual(await journal.append(refused), { ok: false, reason: 'busy' });
    assert.ok(performance.now() - started < 1000, 'refused at once, not after the batches ahead');
    assert.equal(log.lines().filter((line) => line.msg === 'journal queue full; refusing appends as busy').length, 1);

    await releaseLease();
    assert.deepEqual(await Promise.all(accepted), [{ ok: true }, { ok: true }, { ok: true }]);
    const later = deposit();
    assert.deepEqual(await journal.append(later), { ok: true }, 'room again once the queue drained');
    await journal.close();
    assert.deepEqual(await Promise.all([inFlight, queued1, queued2, refused, later].map(committed)), [
      true,
      true,
      true,
      false,
      true,
    ]);
  });
});
