import type { Transaction, TransactionStatus } from '../engine/account.ts';
import { toWire } from '../engine/money.ts';
import type { EventRow } from '../persistence/read-model.ts';
import {
  fromReadModelRow,
  fromTransactionRow,
  type ReadModelRow,
  type TransactionRow,
} from '../persistence/transaction-row.ts';

/** The contract's transaction object: the transaction, its amount a JSON number, without `request_id`. */
export type TransactionJson = Omit<Transaction, 'amount' | 'request_id'> & { amount: number };

/** The contract's transaction object, from the actor's state (fields in the contract's order). */
export function transactionJson(t: Transaction): TransactionJson {
  return {
    id: t.id,
    type: t.type,
    user_id: t.user_id,
    amount: toWire(t.amount),
    currency: t.currency,
    status: t.status,
    description: t.description,
    metadata: t.metadata,
    failure: t.failure,
    bank_reference: t.bank_reference,
    attempts: t.attempts,
    created_at: t.created_at,
    updated_at: t.updated_at,
    completed_at: t.completed_at,
  };
}

/** The contract's transaction object, from the read model. */
export function rowJson(row: TransactionRow): TransactionJson {
  return transactionJson(fromTransactionRow(row));
}

/** A merchant webhook event's `data`: the transaction as the change left it (a delivery's stored row). */
export function webhookData(row: ReadModelRow): TransactionJson {
  return transactionJson(fromReadModelRow(row));
}

// Events absent here (`attempt_failed`, `retry_requested`) leave the status as it was: null.
const STATUS_AFTER: Record<string, TransactionStatus> = {
  transaction_created: 'pending',
  transaction_processing: 'processing',
  transaction_succeeded: 'succeeded',
  transaction_failed: 'failed',
};

/** One entry of a transaction's audit trail: what happened, when, why, and on which request. */
export function eventJson(event: EventRow): Record<string, unknown> {
  const { cause, bank_reference, attempts, failure, error } = event.payload;
  return {
    seq: Number(event.seq),
    type: event.type,
    status: STATUS_AFTER[event.type] ?? null,
    at: event.created_at.toISOString(),
    cause: cause ?? 'api',
    request_id: event.request_id,
    ...(bank_reference !== undefined ? { bank_reference } : {}),
    ...(attempts !== undefined ? { attempts } : {}),
    ...(failure !== undefined ? { failure } : {}),
    ...(error !== undefined ? { error } : {}),
  };
}
