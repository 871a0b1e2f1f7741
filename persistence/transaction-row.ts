import type { Transaction } from '../engine/account.ts';

// A transaction in the `transactions` table (the read model): the engine's Transaction with its failure
// in two columns. The journal writes rows as JSON (amount as a decimal string, times as ISO strings);
// postgres.js reads them back with the amount a bigint and the times Dates.

type Columns = Omit<Transaction, 'failure'> & { failure_code: string | null; failure_message: string | null };

/** A row as the journal writes it. */
export type ReadModelRow = Omit<Columns, 'amount'> & { amount: string };

/** A row as the read model reads it. */
export type TransactionRow = Omit<Columns, 'created_at' | 'updated_at' | 'completed_at'> & {
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
};

/** The row the journal writes for a transaction. */
export function toReadModelRow(transaction: Transaction): ReadModelRow {
  const { failure, amount, ...fields } = transaction;
  return {
    ...fields,
    amount: amount.toString(),
    failure_code: failure?.code ?? null,
    failure_message: failure?.message ?? null,
  };
}

/** The transaction a row read back holds. */
export function fromTransactionRow(row: TransactionRow): Transaction {
  const { failure_code, failure_message, created_at, updated_at, completed_at, ...fields } = row;
  return {
    ...fields,
    failure: failure_code ? { code: failure_code, message: failure_message ?? '' } : null,
    created_at: created_at.toISOString(),
    updated_at: updated_at.toISOString(),
    completed_at: completed_at?.toISOString() ?? null,
  };
}

/** The transaction a row as the journal wrote it holds (a merchant webhook's copy of it). */
export function fromReadModelRow(row: ReadModelRow): Transaction {
  const { failure_code, failure_message, amount, ...fields } = row;
  return {
    ...fields,
    amount: BigInt(amount),
    failure: failure_code ? { code: failure_code, message: failure_message ?? '' } : null,
  };
}
