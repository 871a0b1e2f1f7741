import type { AccountDeps } from '../../engine/account-actor.ts';
import { createRegistry } from '../../engine/registry.ts';
import type { Ownership } from '../../engine/shards.ts';
import { createLogger } from '../../logger.ts';
import { createJournal, readJournal } from '../../persistence/journal.ts';
import { createLeaseStore } from '../../persistence/leases.ts';
import { createSnapshotStore } from '../../persistence/snapshots.ts';
import { createSql } from '../../persistence/sql.ts';
import { testDatabaseUrl } from './database.ts';

export interface EngineOptions {
  batch_wait_ms?: number;
  snapshot_every_events?: number;
  idle_ms?: number;
  /** Records each journal read's starting point, to see whether recovery used a snapshot. */
  reads?: { user_id: string; after_seq: number }[];
}

/** The account engine alone (no HTTP) on this process's test database. */
export async function startEngine(options: EngineOptions = {}) {
  const log = createLogger('silent');
  const sql = createSql(await testDatabaseUrl(), { pool_max: 6, application_name: 'engine-test' });
  const journal = createJournal(sql, {
    batch_size_max: 256,
    batch_wait_ms: options.batch_wait_ms ?? 1,
    flushes_in_flight_max: 2,
    idempotency_ttl_hours: 24,
    log,
  });
  // This process owns every shard (no Redis leases here): a new epoch for each, as a takeover records.
  const epochs = await createLeaseStore(sql).takeOver(`engine-test-${process.pid}`, [0, 1, 2, 3, 4, 5, 6, 7], null);
  const ownership: Ownership = {
    shards: 8,
    epochOf: (shard) => epochs.get(shard),
    lose: (shard) => void epochs.delete(shard),
    owned: () => [...epochs.keys()].sort((a, b) => a - b),
  };
  const deps: AccountDeps = {
    journal,
    snapshots: createSnapshotStore(sql),
    readEvents: (user_id, after_seq) => {
      options.reads?.push({ user_id, after_seq });
      return readJournal(sql, user_id, after_seq);
    },
    ownership,
    snapshot_every_events: options.snapshot_every_events ?? 1000,
    log,
  };
  const registry = createRegistry({
    deps,
    idle_ms: options.idle_ms ?? 60_000,
    mailbox_max: 10_000,
    batch_max: 256,
    ask_timeout_ms: 10_000,
    log,
  });
  return {
    sql,
    journal,
    ownership,
    registry,
    deps,
    async close() {
      await registry.close();
      await journal.close();
      await sql.end();
    },
  };
}
