import type { Sql } from './sql.ts';

/** One journal row as reconciliation replays it. */
export interface JournalRow {
  user_id: string;
  seq: bigint;
  payload: unknown;
}

/** Per user, currency, type and status: how many transactions the read model holds, and their sum. */
export interface ReadModelTotalRow {
  user_id: string;
  currency: string;
  type: string;
  status: string;
  n: bigint;
  total: bigint;
}

/** The reads of one snapshot: everything they return was committed before it began, nothing after. */
export interface ReconciliationSnapshot {
  readModelTotals(): Promise<ReadModelTotalRow[]>;
  /** The whole journal in (user_id, seq) order, `page_size` rows at a time. */
  journal(page_size: number): AsyncIterable<JournalRow[]>;
}

/** What reconciliation (engine/reconciliation.ts) reads the journal and the read model through. */
export interface ReconciliationReader {
  /** Runs `work` in one read-only, repeatable-read transaction over the journal and the read model. */
  inSnapshot<T>(work: (snapshot: ReconciliationSnapshot) => Promise<T>): Promise<T>;
}

/** Reconciliation's reads on this pool. */
export function createReconciliationReader(sql: Sql): ReconciliationReader {
  return {
    async inSnapshot<T>(work: (snapshot: ReconciliationSnapshot) => Promise<T>): Promise<T> {
      // One snapshot for both reads: under live traffic the journal would otherwise be read later, and
      // so be ahead of, the read model. `work` may wait on live actors between pages: no idle limit.
      let result: T | undefined;
      await sql.begin('isolation level repeatable read read only', async (tx) => {
        await tx`SELECT set_config('idle_in_transaction_session_timeout', '0', true)`;
        const q = tx as unknown as Sql;
        result = await work({
          readModelTotals: () =>
            q<ReadModelTotalRow[]>`
              SELECT user_id, currency, type, status, count(*)::bigint AS n, sum(amount)::bigint AS total
              FROM transactions GROUP BY user_id, currency, type, status`,
          journal: (page_size) =>
            q<JournalRow[]>`SELECT user_id, seq, payload FROM journal ORDER BY user_id, seq`.cursor(page_size),
        });
      });
      return result as T;
    },
  };
}
