import { loadConfig } from '../../config.ts';
import { createAccounts } from '../../engine/engine.ts';
import type { Ownership } from '../../engine/shards.ts';
import { createLogger } from '../../logger.ts';
import { readJournal } from '../../persistence/journal.ts';
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

/** The account core alone (journal and actors; no HTTP, no Redis) on this process's test database. */
export async function startEngine(options: EngineOptions = {}) {
  const log = createLogger('silent');
  const sql = createSql(await testDatabaseUrl(), { pool_max: 6, application_name: 'engine-test' });
  // This process owns every shard (no Redis leases here): a new epoch for each, as a takeover records.
  const epochs = await createLeaseStore(sql).takeOver(`engine-test-${process.pid}`, [0, 1, 2, 3, 4, 5, 6, 7], null);
  const ownership: Ownership = {
    shards: 8,
    epochOf: (shard) => epochs.get(shard),
    lose: (shard) => void epochs.delete(shard),
    owned: () => [...epochs.keys()].sort((a, b) => a - b),
  };
  // The service's defaults, with the limits a test turns: the same factory the engine uses.
  const settings = {
    ...loadConfig({}),
    DATABASE_POOL_MAX: 4,
    JOURNAL_BATCH_WAIT_MS: options.batch_wait_ms ?? 1,
    SNAPSHOT_EVERY_EVENTS: options.snapshot_every_events ?? 1000,
    ACTOR_IDLE_MS: options.idle_ms ?? 60_000,
    ACTOR_MAILBOX_MAX: 10_000,
    ACTOR_ASK_TIMEOUT_MS: 10_000,
  };
  const core = createAccounts({
    settings,
    sql,
    snapshots: createSnapshotStore(sql),
    ownership,
    log,
    readEvents: (user_id, after_seq) => {
      options.reads?.push({ user_id, after_seq });
      return readJournal(sql, user_id, after_seq);
    },
  });
  return {
    sql,
    journal: core.journal,
    ownership,
    registry: core.accounts,
    deps: core.deps,
    async close() {
      await core.close();
      await sql.end();
    },
  };
}
