import type { Transaction } from '../engine/account.ts';
import { toWire } from '../engine/money.ts';
import type { EventRow, TransactionRow } from '../persistence/read-model.ts';

/** The contract's transaction object, from the actor's state. */
export function transactionJson(t: Transaction): Record<string, unknown> {
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
export function rowJson(row: TransactionRow): Record<string, unknown> {
  return {
    id: row.id,
    type: row.type,
    user_id: row.user_id,
    amount: toWire(row.amount),
    currency: row.currency,
    status: row.status,
    description: row.description,
    metadata: row.metadata,
    failure: row.failure_code ? { code: row.failure_code, message: row.failure_message ?? '' } : null,
    bank_reference: row.bank_reference,
    attempts: row.attempts,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    completed_at: row.completed_at?.toISOString() ?? null,
  };
}

// Events absent here (`attempt_failed`, `retry_requested`) leave the status as it was: null.
const STATUS_AFTER: Record<string, string> = {
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
