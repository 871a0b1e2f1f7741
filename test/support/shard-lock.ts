import type { Sql } from '../../persistence/sql.ts';
import { eventually } from './time.ts';

/**
 * Holds a shard's lease row FOR UPDATE, as a takeover does (every lease row when `shard` is absent):
 * the journal appends of its accounts wait on their FOR SHARE until the returned release is called.
 */
export async function holdShard(sql: Sql, shard?: number): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  const transaction = sql.begin(async (tx) => {
    await tx`SELECT 1 FROM shard_leases WHERE ${shard === undefined ? tx`TRUE` : tx`shard = ${shard}`} FOR UPDATE`;
    held();
    await released;
  });
  await holding;
  return async () => {
    release();
    await transaction;
  };
}

/** Resolves once a gateway session's journal append waits for a lease row's lock. */
export function appendWaiting(sql: Sql, wait_ms = 10_000): Promise<true> {
  return eventually(async () => {
    const [row] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'gateway:%' AND wait_event_type = 'Lock'
        AND query ILIKE '%FROM shard_leases%FOR SHARE%'`;
    return row!.n > 0 ? true : undefined;
  }, wait_ms);
}
