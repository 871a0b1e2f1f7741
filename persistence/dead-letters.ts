import { v7 as uuidv7 } from 'uuid';
import type { Sql } from './sql.ts';

export interface DeadLetterRow {
  id: string;
  transaction_id: string;
  user_id: string;
  reason: string;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  retried_at: Date | null;
}

/** Payments that gave up after their last attempt, waiting for an admin. */
export function createDeadLetterStore(sql: Sql) {
  return {
    /** Files a transaction; a transaction has at most one open dead letter. */
    async add(letter: Pick<DeadLetterRow, 'transaction_id' | 'user_id' | 'reason' | 'attempts' | 'last_error'>) {
      await sql`
        INSERT INTO dead_letters (id, transaction_id, user_id, reason, attempts, last_error)
        VALUES (${uuidv7()}, ${letter.transaction_id}, ${letter.user_id}, ${letter.reason}, ${letter.attempts},
                ${letter.last_error})
        ON CONFLICT DO NOTHING`;
    },

    /** Open ones first, newest first; keyset on (created_at, id). */
    async page(limit: number, after?: { created_at: Date; id: string }): Promise<DeadLetterRow[]> {
      return sql<DeadLetterRow[]>`
        SELECT * FROM dead_letters
        WHERE ${after ? sql`(created_at, id) < (${after.created_at}, ${after.id})` : sql`TRUE`}
        ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
    },

    async isOpen(transaction_id: string): Promise<boolean> {
      const rows =
        await sql`SELECT 1 FROM dead_letters WHERE transaction_id = ${transaction_id} AND retried_at IS NULL`;
      return rows.length > 0;
    },

    /** Marks an open dead letter retried; undefined when there is none with this id or it was retried. */
    async markRetried(id: string): Promise<DeadLetterRow | undefined> {
      const rows = await sql<DeadLetterRow[]>`
        UPDATE dead_letters SET retried_at = now() WHERE id = ${id} AND retried_at IS NULL RETURNING *`;
      return rows[0];
    },

    async find(id: string): Promise<DeadLetterRow | undefined> {
      const rows = await sql<DeadLetterRow[]>`SELECT * FROM dead_letters WHERE id = ${id}`;
      return rows[0];
    },
  };
}

export type DeadLetterStore = ReturnType<typeof createDeadLetterStore>;
