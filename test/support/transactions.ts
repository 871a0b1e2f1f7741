import { v7 as uuidv7 } from 'uuid';
import type { Transaction } from '../../engine/account.ts';

/**
 * A new transaction as the engine creates it (pending, no attempts yet): a deposit of 100 USD on a
 * fresh account, created now, unless `fields` say otherwise.
 */
export function pendingTransaction(fields: Partial<Transaction> = {}): Transaction {
  const at = fields.created_at ?? new Date().toISOString();
  return {
    id: uuidv7(),
    user_id: uuidv7(),
    type: 'deposit',
    amount: 100n,
    currency: 'USD',
    status: 'pending',
    description: null,
    metadata: null,
    failure: null,
    bank_reference: null,
    attempts: 0,
    request_id: null,
    created_at: at,
    updated_at: at,
    completed_at: null,
    ...fields,
  };
}
