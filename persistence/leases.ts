import type { Sql } from './sql.ts';

/** The shard_leases table: who owns each shard and its fencing epoch. */
export function createLeaseStore(sql: Sql) {
  return {
    /**
     * Takes shards over for `owner`, bumping each one's epoch; returns the new epochs. The update waits
     * for appends holding the lease rows (they commit under the old epoch first); it gives up after
     * `lock_timeout_ms` rather than stall behind a stuck process.
     */
    async takeOver(
      owner: string,
      shards: number[],
      lease_ms: number | null,
      lock_timeout_ms = 2000,
    ): Promise<Map<number, bigint>> {
      const rows = await sql.begin(async (tx) => {
        await tx`SELECT set_config('lock_timeout', ${`${lock_timeout_ms}ms`}, true)`;
        return tx<{ shard: number; epoch: bigint }[]>`
          INSERT INTO shard_leases (shard, owner, epoch, lease_expires_at, updated_at)
          SELECT value::int, ${owner}, 1,
                 CASE WHEN ${lease_ms}::int IS NULL THEN NULL ELSE now() + make_interval(secs => ${lease_ms}::int / 1000.0) END,
                 now()
          FROM jsonb_array_elements_text(${JSON.stringify(shards)}::text::jsonb)
          ON CONFLICT (shard) DO UPDATE SET
            owner = excluded.owner, epoch = shard_leases.epoch + 1,
            lease_expires_at = excluded.lease_expires_at, updated_at = now()
          RETURNING shard, epoch`;
      });
      return new Map(rows.map((row) => [row.shard, row.epoch]));
    },

    async list(): Promise<{ shard: number; owner: string | null; epoch: bigint; lease_expires_at: Date | null }[]> {
      return sql`SELECT shard, owner, epoch, lease_expires_at FROM shard_leases ORDER BY shard`;
    },
  };
}

export type LeaseStore = ReturnType<typeof createLeaseStore>;
