import type { TransactionStatus, TransactionType } from '../engine/account.ts';
import type { Sql } from './sql.ts';
import type { TransactionRow } from './transaction-row.ts';

export interface EventRow {
  seq: bigint;
  type: string;
  payload: Record<string, unknown>;
  request_id: string | null;
  created_at: Date;
}

export interface PageQuery {
  user_id?: string;
  type?: TransactionType;
  status?: TransactionStatus;
  currency?: string;
  /** Created at or after this instant (inclusive). */
  created_from?: Date;
  /** Created at or before this instant (inclusive). */
  created_to?: Date;
  min_amount?: bigint;
  max_amount?: bigint;
  /** Keyset position: rows strictly older than (created_at, id). */
  after?: { created_at: Date; id: string };
  limit: number;
}

/** Where an open transaction is found: enough to reach its account and to page on. */
export interface OpenTransactionRef {
  id: string;
  user_id: string;
  created_at: Date;
}

export interface OpenTransactionsQuery {
  updated_before: Date;
  /** Keyset position: rows strictly after (created_at, id). */
  after?: { created_at: Date; id: string };
  limit: number;
}

const COLUMNS = `id, user_id, type, amount, currency, status, description, metadata, failure_code,
  failure_message, bank_reference, attempts, request_id, created_at, updated_at, completed_at`;

/** Queries over the transactions read model and the journal's audit trail. */
export function createReadModel(sql: Sql) {
  return {
    async find(id: string): Promise<TransactionRow | undefined> {
      const rows = await sql<TransactionRow[]>`SELECT ${sql.unsafe(COLUMNS)} FROM transactions WHERE id = ${id}`;
      return rows[0];
    },

    /** Every journal event of one transaction, in order: its audit trail. */
    async events(transaction: { id: string; user_id: string }): Promise<EventRow[]> {
      return sql<EventRow[]>`
        SELECT seq, type, payload, request_id, created_at FROM journal
        WHERE transaction_id = ${transaction.id} AND user_id = ${transaction.user_id} ORDER BY seq`;
    },

    /** One page, newest first, keyset on (created_at, id); fetches one row more to know if more exist. */
    async page(query: PageQuery): Promise<{ rows: TransactionRow[]; has_more: boolean }> {
      const conditions = [
        query.user_id !== undefined && sql`user_id = ${query.user_id}`,
        query.type !== undefined && sql`type = ${query.type}`,
        query.status !== undefined && sql`status = ${query.status}`,
        query.currency !== undefined && sql`currency = ${query.currency}`,
        query.created_from !== undefined && sql`created_at >= ${query.created_from}`,
        query.created_to !== undefined && sql`created_at <= ${query.created_to}`,
        query.min_amount !== undefined && sql`amount >= ${query.min_amount}`,
        query.max_amount !== undefined && sql`amount <= ${query.max_amount}`,
        query.after !== undefined && sql`(created_at, id) < (${query.after.created_at}, ${query.after.id})`,
      ].filter((condition) => condition !== false);
      const where = conditions.reduce((all, condition) => sql`${all} AND ${condition}`, sql`TRUE`);
      const rows = await sql<TransactionRow[]>`
        SELECT ${sql.unsafe(COLUMNS)} FROM transactions WHERE ${where}
        ORDER BY created_at DESC, id DESC LIMIT ${query.limit + 1}`;
      return { rows: rows.slice(0, query.limit), has_more: rows.length > query.limit };
    },

    /**
     * One page of the transactions still pending or processing, unchanged since `updated_before` and
     * not waiting in the dead letters, oldest first; keyset on (created_at, id), served by the partial
     * index of open transactions.
     */
    async openTransactions(query: OpenTransactionsQuery): Promise<OpenTransactionRef[]> {
      const { after } = query;
      return sql<OpenTransactionRef[]>`
        SELECT t.id, t.user_id, t.created_at FROM transactions t
        WHERE t.status IN ('pending', 'processing') AND t.updated_at < ${query.updated_before}
          AND ${after ? sql`(t.created_at, t.id) > (${after.created_at}, ${after.id})` : sql`TRUE`}
          AND NOT EXISTS (
            SELECT 1 FROM dead_letters d WHERE d.transaction_id = t.id AND d.retried_at IS NULL)
        ORDER BY t.created_at, t.id LIMIT ${query.limit}`;
    },
  };
}

export type ReadModel = ReturnType<typeof createReadModel>;
