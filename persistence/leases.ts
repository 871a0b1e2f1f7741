import type { Sql } from './sql.ts';

/** The Postgres application_name of an instance's sessions (at most 63 bytes, as Postgres keeps). */
export function sessionName(instance: string): string {
  return `gateway:${instance}`.slice(0, 63);
}

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

    /**
     * Ends every session of these instances on this database: a stale owner, paused while its
     * transaction held a lease row, would otherwise block the takeover until it woke up. What it had
     * not committed is rolled back, and nothing uncommitted was ever acknowledged. Returns how many.
     */
    async fenceOut(owners: string[]): Promise<number> {
      if (owners.length === 0) return 0;
      const rows = await sql<{ ended: boolean }[]>`
        SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND application_name IN (SELECT value FROM jsonb_array_elements_text(${JSON.stringify(owners.map(sessionName))}::text::jsonb))`;
      return rows.filter((row) => row.ended).length;
    },

    async list(): Promise<{ shard: number; owner: string | null; epoch: bigint; lease_expires_at: Date | null }[]> {
      return sql`SELECT shard, owner, epoch, lease_expires_at FROM shard_leases ORDER BY shard`;
    },
  };
}

export type LeaseStore = ReturnType<typeof createLeaseStore>;
