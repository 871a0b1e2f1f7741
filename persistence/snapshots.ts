import type { Sql } from './sql.ts';

/** Account snapshots: the latest per user bounds recovery; older ones are deleted as new ones land. */
export function createSnapshotStore(sql: Sql) {
  return {
    async latest(user_id: string): Promise<{ seq: number; state: unknown } | undefined> {
      const rows = await sql<{ seq: bigint; state: unknown }[]>`
        SELECT seq, state FROM snapshots WHERE user_id = ${user_id} ORDER BY seq DESC LIMIT 1`;
      const row = rows[0];
      return row && { seq: Number(row.seq), state: row.state };
    },

    async save(user_id: string, seq: number, state: unknown): Promise<void> {
      await sql.begin(async (tx) => {
        await tx`
          INSERT INTO snapshots (user_id, seq, state) VALUES (${user_id}, ${seq}, ${JSON.stringify(state)}::text::jsonb)
          ON CONFLICT DO NOTHING`;
        await tx`DELETE FROM snapshots WHERE user_id = ${user_id} AND seq < ${seq}`;
      });
    },
  };
}

export type SnapshotStore = ReturnType<typeof createSnapshotStore>;
